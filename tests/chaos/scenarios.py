"""The fault-injection scenarios, shared by tests/chaos and bench/chaos_soak.py.

Each is ``async def scenario(h, rng) -> {execution_id: Expected}``: it builds definitions,
starts workers, runs executions, injects its faults (``rng`` varies their timing in the
soak) and records scenario-specific findings with ``h.expect``. The caller then checks the
invariant and replays the histories (:meth:`Harness.verdict`). Timeouts are short on
purpose: heartbeat timeouts of 1-2 s and retry intervals of 0.1 s keep each under a minute.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any

from temporalio.api.enums.v1 import PendingWorkflowTaskState

from engine import ConnectionType, PluginError, PluginErrorCode, WorkflowExecutionMode
from engine.language.models import PluginWorkflow, WorkflowExecutionStatus
from engine.runtime.contracts import definition_entity_id
from tests.chaos.fuzz import expected_run, random_definition
from tests.chaos.harness import Harness, timed
from tests.chaos.invariants import Expected
from tests.helpers.builders import edge, node, workflow
from tests.helpers.waiting import eventually

Mode = WorkflowExecutionMode
Status = WorkflowExecutionStatus
FAST_RETRY = {"initial_interval": 0.1, "maximum_interval": 0.5}


def _chain(h: Harness, name: str, *nodes: Any, mode: Mode = Mode.Sequential) -> PluginWorkflow:
    ids = [n.node_id for n in nodes]
    edges = [edge(a, b) for a, b in itertools.pairwise(ids)]
    return workflow(h.unique(name), list(nodes), edges, mode=mode, retry=FAST_RETRY)


def _completed(*node_ids: str) -> Expected:
    return Expected(Status.Completed, dict.fromkeys(node_ids, "completed"))


async def _start(h: Harness, definition: PluginWorkflow, runs: int = 1) -> list[str]:
    """Register ``definition`` and start ``runs`` executions, 20 starts at a time: each start
    reads the definition with a query to its registry entity, and one worker answers the
    queries of one workflow one after another (over a slow link, 200 at once outlast the
    query timeout)."""
    await h.orchestrator.register_workflow(definition)
    slots = asyncio.Semaphore(20)

    async def start(i: int) -> str:
        async with slots:
            return await h.orchestrator.execute_workflow(definition.workflow_id, {"run": i})

    return list(await asyncio.gather(*(start(i) for i in range(runs))))


# -- worker crashes ----------------------------------------------------------------------


async def worker_killed_heartbeating(h: Harness, rng: random.Random) -> dict[str, Expected]:
    """SIGKILL while a node heartbeats a checkpoint: the retry resumes from it."""
    first, spare = await h.workers_up(1, standby=1)
    slow = node("slow", "effect", seconds=3, steps=30, checkpoint=True, heartbeat_timeout=1)
    after = node("after", "effect", dedup=True)
    definition = _chain(h, "hb-kill", node("before", "effect"), slow, after)
    [run] = await _start(h, definition)
    await h.until_effect(run, "slow", "started")
    await asyncio.sleep(1.2 + rng.random() * 0.8)  # a checkpoint has reached the server
    h.kill(first)
    await h.go(spare)
    context = await h.orchestrator.wait_for_completion(run, 60)
    state = context.node_states["slow"]
    h.expect(state.get("attempts") == 2, f"slow took {state.get('attempts')} attempts, not 2")
    resumed = (state.get("result") or {}).get("resumed_from", 0)
    h.expect(resumed > 0, "the retried attempt did not resume from the heartbeated checkpoint")
    h.expect(h.ledger.count("before", "done", run) == 1, "'before' ran again after the crash")
    return {run: _completed("before", "slow", "after")}


async def worker_killed_blocking(h: Harness, rng: random.Random) -> dict[str, Expected]:
    """SIGKILL while a synchronous plugin that never heartbeats itself blocks its thread:
    the engine's own heartbeats stop with the process, so the attempt is retried."""
    first, spare = await h.workers_up(1, standby=1)
    slow = node("slow", "effect_blocking", seconds=3, heartbeat_timeout=1)
    definition = _chain(h, "block-kill", node("before", "effect"), slow, node("after", "effect"))
    [run] = await _start(h, definition)
    await h.until_effect(run, "slow", "started")
    await asyncio.sleep(0.2 + rng.random())
    h.kill(first)
    await h.go(spare)
    context = await h.orchestrator.wait_for_completion(run, 60)
    attempts = context.node_states["slow"].get("attempts")
    h.expect(attempts == 2, f"slow took {attempts} attempts, not 2")
    return {run: _completed("before", "slow", "after")}


async def worker_killed_planning(h: Harness, rng: random.Random) -> dict[str, Expected]:
    """SIGKILL once a root has completed and the workflow task that plans its 200 ready
    successors has started (the run then waits out Temporal's 10 s workflow task timeout;
    with the workflow cache off the next worker replays everything)."""
    first, spare = await h.workers_up(1, standby=1)
    leaves = [node(f"leaf{i}", "effect", dedup=i % 2 == 0) for i in range(200)]
    definition = workflow(
        h.unique("plan-kill"),
        [node("root", "effect", seconds=0.3), *leaves, node("join", "effect")],
        [edge("root", f"leaf{i}") for i in range(200)]
        + [edge(f"leaf{i}", "join", kind=ConnectionType.Dependency) for i in range(200)],
        max_parallelism=200,
        heartbeat_timeout=1,
        retry=FAST_RETRY,
    )
    [run] = await _start(h, definition)
    await h.until_effect(run, "root", "done")
    await eventually(lambda: _workflow_task_started(h, run), bool, interval=0.005)
    await asyncio.sleep(rng.random() * 0.05)
    h.kill(first)
    await h.go(spare)
    return {run: _completed("root", "join", *(f"leaf{i}" for i in range(200)))}


async def worker_killed_in_light_chain(h: Harness, rng: random.Random) -> dict[str, Expected]:
    """SIGKILL in a chain of light nodes (local activities, all in one workflow task): the
    next worker takes the task over once it times out and runs the chain again from the
    last completed task, so every node's effect is recorded at least once (the nodes done
    in the lost task twice; deduplicated effects still once)."""
    first, spare = await h.workers_up(1, standby=1)
    nodes = [node(f"n{i}", "effect", seconds=0.05, dedup=i % 2 == 0) for i in range(30)]
    definition = _chain(h, "light-kill", *nodes)
    definition.global_configuration["execution"] = "local"
    [run] = await _start(h, definition)
    await h.until_effect(run, f"n{5 + rng.randrange(10)}", "done")
    h.kill(first)
    await h.go(spare)
    await h.orchestrator.wait_for_completion(run, 60)
    for i in range(30):
        done = h.ledger.count(f"n{i}", "done", run)
        h.expect(done >= 1, f"n{i} left no effect")
    # Twice unless the worker heartbeated the task (at 8 s) before the kill: never more.
    reruns = h.ledger.count("n0", "done", run)
    h.expect(reruns in (1, 2), f"n0 ran {reruns} times")
    return {run: _completed(*(f"n{i}" for i in range(30)))}


async def _workflow_task_started(h: Harness, execution_id: str) -> bool:
    description = await h.orchestrator.client.get_workflow_handle(execution_id).describe()
    task = description.raw_description.pending_workflow_task
    return task.state == PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_STARTED


async def sigterm_drain(h: Harness, rng: random.Random) -> dict[str, Expected]:
    """SIGTERM while a node runs: the worker stops polling, lets the node finish (once, no
    retry) and exits 0; the next node runs on the other worker."""
    first, spare = await h.workers_up(1, standby=1, graceful_shutdown=10)
    definition = _chain(
        h, "drain", node("a", "effect", seconds=2, heartbeat_timeout=2), node("b", "effect")
    )
    [run] = await _start(h, definition)
    await h.until_effect(run, "a", "started")
    await asyncio.sleep(rng.random() * 0.5)
    code, _ = await asyncio.gather(h.terminate(first), h.go(spare))
    h.expect(code == 0, f"the drained worker exited with {code}")
    h.expect("Fatal Python error" not in first.stderr_text(), "the drained worker crashed at exit")
    context = await h.orchestrator.wait_for_completion(run, 60)
    a, b = context.node_states["a"], context.node_states["b"]
    h.expect(a.get("attempts") == 1, f"a took {a.get('attempts')} attempts despite the drain")
    h.expect(a.get("result", {}).get("pid") == first.pid, "a was not finished by the drained one")
    h.expect(b.get("result", {}).get("pid") == spare.pid, "b did not run on the other worker")
    return {run: _completed("a", "b")}


# -- server crashes ----------------------------------------------------------------------


async def server_killed_mid_run(h: Harness, rng: random.Random) -> dict[str, Expected]:
    """SIGKILL of the server (SQLite file) while nodes run; restarted on the same file and
    port, the runs complete."""
    await h.workers_up(1)
    leaves = [node(f"l{i}", "effect", seconds=2, checkpoint=True, dedup=True) for i in range(4)]
    definition = workflow(
        h.unique("server-kill"),
        [node("root", "effect"), *leaves, node("join", "effect")],
        [edge("root", f"l{i}") for i in range(4)]
        + [edge(f"l{i}", "join", target_port=f"p{i}") for i in range(4)],
        heartbeat_timeout=2,
        retry=FAST_RETRY,
    )
    runs = await _start(h, definition, runs=3)
    for run in runs:
        await h.until_effect(run, "l0", "started")
    await asyncio.sleep(rng.random())
    await h.restart_server(down=0.5 + rng.random())
    nodes = ("root", "join", *(f"l{i}" for i in range(4)))
    return {run: _completed(*nodes) for run in runs}


async def server_killed_during_start(h: Harness, rng: random.Random) -> dict[str, Expected]:
    """SIGKILL of the server while ``execute_workflow`` calls are in flight: none fails (the
    client retries the same request) and each made exactly one run."""
    await h.workers_up(1)
    definition = _chain(h, "start-kill", node("only", "effect", dedup=True))
    await h.orchestrator.register_workflow(definition)
    ids: list[str] = []
    errors: list[str] = []

    async def keep_starting() -> None:
        while len(ids) < 8:
            try:
                ids.append(await h.orchestrator.execute_workflow(definition.workflow_id))
            except PluginError as exc:
                errors.append(f"{exc.code.value}: {exc.message}")
                return

    starter = asyncio.create_task(keep_starting())
    await eventually(lambda: asyncio.sleep(0, len(ids)), lambda n: n >= 2, interval=0.01)
    await h.restart_server(down=0.5 + rng.random())
    await starter
    h.expect(not errors, f"execute_workflow failed across the restart: {errors}")
    # The invariant then compares the executions on the server with these ids.
    return {run: _completed("only") for run in ids}


# -- network -------------------------------------------------------------------------------


async def partition_zombie(h: Harness, rng: random.Random) -> dict[str, Expected]:
    """The worker running a node is cut off for longer than the heartbeat timeout: the
    server retries the node on another worker, and the cut-off attempt (a zombie) finishes
    anyway; once the network heals, its late completion is rejected."""
    proxy = await h.proxy()
    [zombie_worker], [spare] = await asyncio.gather(
        h.workers_up(1, address=proxy.address), h.workers_up(0, standby=1)
    )
    z = node("z", "effect", seconds=2.5, steps=25, slow_attempts=1, heartbeat_timeout=1)
    after = node("after", "effect", seconds=3)
    definition = _chain(h, "partition", node("before", "effect"), z, after)
    [run] = await _start(h, definition)
    await h.until_effect(run, "z", "started")
    await asyncio.sleep(rng.random() * 0.5)
    proxy.cut()
    h.faults["network partition"] += 1
    await h.go(spare)
    await h.until_effect(run, "z", "done", attempt=1)  # the zombie finished its work
    await h.until_effect(run, "z", "done", attempt=2)  # ...and so did the retry
    await h.until_effect(run, "after", "started")
    proxy.heal()  # while the run is still open: the zombie's completion reaches the server
    context = await h.orchestrator.wait_for_completion(run, 60)
    z_state = context.node_states["z"]
    h.expect(z_state.get("attempts") == 2, f"z recorded attempt {z_state.get('attempts')}")
    h.expect(z_state.get("result", {}).get("pid") == spare.pid, "z's result is not the retry's")
    h.expect(zombie_worker.process.poll() is None, "the partitioned worker died")
    try:  # the SDK's core logs the server's answer to the zombie's completion
        await eventually(
            lambda: asyncio.to_thread(zombie_worker.stderr_text),
            lambda log: "Activity not found on completion" in log,
            timeout=20,
        )
    except AssertionError:
        h.expect(False, "the zombie's completion was never sent and rejected")
    return {run: _completed("before", "z", "after")}


# -- many workers --------------------------------------------------------------------------


async def race(
    h: Harness, rng: random.Random, *, workers: int = 2, runs: int = 200, kill_one: bool = False
) -> dict[str, Expected]:
    """Several workers race for one task queue with ``runs`` concurrent executions; the
    last worker sits behind a slow link (20 ms a chunk each way); with ``kill_one`` the
    first is SIGKILLed mid-way.

    These workers keep the default workflow cache, as in production (sticky queues, and a
    killed worker's sticky tasks moving on). Without a cache, a worker of temporalio 1.35
    never answers some of many concurrent queries of one workflow (here: the registry
    entity, which every start queries); the histories are replayed uncached afterwards.
    """
    proxy = await h.proxy()
    proxy.delay = 0.02
    h.faults["slow link"] += 1
    direct, slow = await asyncio.gather(
        h.workers_up(workers - 1, max_cached_workflows=1000),
        h.workers_up(1, address=proxy.address, max_cached_workflows=1000),
    )
    pool = direct + slow
    definition = workflow(
        h.unique("race"),
        # a waits a second, so all the runs are in flight at once
        [node("a", "effect", seconds=1), node("b", "effect", dedup=True), node("c", "effect")],
        [edge("a", "b"), edge("a", "c", kind=ConnectionType.Dependency)],
        heartbeat_timeout=2,
        retry=FAST_RETRY,
    )
    ids = await _start(h, definition, runs=runs)
    if kill_one:
        await eventually(
            lambda: h.effects(), lambda rows: sum(r.node_id == "c" for r in rows) >= runs // 4
        )
        await asyncio.sleep(rng.random() * 0.3)
        h.kill(pool[0])
    results = await asyncio.gather(*(h.orchestrator.wait_for_completion(i, 120) for i in ids))
    pids = {state["result"]["pid"] for ctx in results for state in ctx.node_states.values()}
    h.expect(len(pids) >= min(workers, 2), f"only {len(pids)} workers ran nodes")
    return {run: _completed("a", "b", "c") for run in ids}


# -- control under faults ------------------------------------------------------------------


async def pause_running_node(h: Harness, rng: random.Random) -> dict[str, Expected]:
    """Pause while a node runs: it finishes and is recorded, nothing new starts until
    resume."""
    await h.workers_up(1)
    definition = _chain(h, "pause", node("a", "effect", seconds=1.5), node("b", "effect"))
    [run] = await _start(h, definition)
    await h.until_effect(run, "a", "started")
    await h.orchestrator.pause_execution(run)
    await h.until_effect(run, "a", "done")
    await asyncio.sleep(1.0 + rng.random())
    context = await h.orchestrator.get_execution_status(run)
    h.expect(context.status is Status.Paused, f"status {context.status.value}, not paused")
    h.expect(context.node_states["a"]["status"] == "completed", "a was not recorded while paused")
    h.expect(h.ledger.count("b", "started", run) == 0, "b started while paused")
    await h.orchestrator.resume_execution(run)
    return {run: _completed("a", "b")}


async def pause_across_restart(h: Harness, rng: random.Random) -> dict[str, Expected]:
    """Pause while a node runs, then SIGKILL its worker: the new worker finishes the node
    (a retry), the execution stays paused, and resume continues it."""
    first, spare = await h.workers_up(1, standby=1)
    a = node("a", "effect", seconds=3, checkpoint=True, heartbeat_timeout=1)
    definition = _chain(h, "pause-restart", a, node("b", "effect"))
    [run] = await _start(h, definition)
    await h.until_effect(run, "a", "started")
    await h.orchestrator.pause_execution(run)
    await asyncio.sleep(rng.random() * 0.5)
    h.kill(first)
    await h.go(spare)
    await h.until_effect(run, "a", "done", attempt=2)
    await asyncio.sleep(1.0)
    context = await eventually(
        lambda: h.orchestrator.get_execution_status(run),
        lambda c: c.node_states["a"]["status"] == "completed",
    )
    h.expect(context.status is Status.Paused, f"status {context.status.value} after restart")
    h.expect(h.ledger.count("b", "started", run) == 0, "b started while paused")
    await h.orchestrator.resume_execution(run)
    return {run: _completed("a", "b")}


async def cancel_in_backoff(h: Harness, rng: random.Random) -> dict[str, Expected]:
    """Cancel while a failed node waits 3 s for its retry: the run ends cancelled at once and
    the retry never runs."""
    await h.workers_up(1)
    flaky = node(
        "flaky", "effect", fail_attempts=5, retry={"max_attempts": 5, "initial_interval": 3}
    )
    definition = _chain(h, "cancel-backoff", node("a", "effect"), flaky, node("b", "effect"))
    [run] = await _start(h, definition)
    await h.until_effect(run, "flaky", "failed")
    await asyncio.sleep(rng.random() * 0.5)
    await h.orchestrator.cancel_execution(run)
    _, took = await timed(h.orchestrator.wait_for_completion(run, 30))
    h.expect(took < 2, f"cancellation took {took:.1f}s, inside a 3 s backoff")
    await asyncio.sleep(max(0.0, 3.5 - took))  # past when the retry would have run
    h.expect(h.ledger.count("flaky", "started", run) == 1, "the retry ran after cancellation")
    return {
        run: Expected(Status.Cancelled, {"a": "completed", "flaky": "cancelled", "b": "cancelled"})
    }


async def cycle_while_running(h: Harness, rng: random.Random) -> dict[str, Expected]:
    """Modifications that would create a cycle, while runs are going: rejected, nothing
    stored; a valid one makes version 2; the runs finish on version 1."""
    await h.workers_up(1)
    definition = _chain(
        h, "cycle", *(node(n, "effect", seconds=0.5, dedup=True) for n in ("a", "b", "c"))
    )
    runs = await _start(h, definition, runs=5)
    await h.until_effect(runs[-1], "a", "started")
    orchestrator = h.orchestrator
    workflow_id = definition.workflow_id
    for change in (
        lambda: orchestrator.add_connection_to_workflow(workflow_id, edge("c", "a")),
        lambda: orchestrator.update_workflow(_with_cycle(definition)),
    ):
        try:
            await change()
            h.expect(False, "a cycle was accepted")
        except PluginError as exc:
            h.expect(exc.code is PluginErrorCode.CircularDependency, f"rejected as {exc.code}")
    version = (await orchestrator.get_workflow(workflow_id)).version
    h.expect(version == 1, f"a rejected change made version {version}")
    await orchestrator.add_node_to_workflow(workflow_id, node("d", "effect"))
    for run in runs:
        context = await orchestrator.wait_for_completion(run, 60)
        used = context.execution_data.get("workflow_version")
        h.expect(used == 1 and "d" not in context.node_states, f"{run} ran version {used}")
    entity = definition_entity_id(workflow_id, h.task_queue)
    h.extra_histories.append(await orchestrator.client.get_workflow_handle(entity).fetch_history())
    return {run: Expected(Status.Completed, dict.fromkeys("abc", "completed")) for run in runs}


def _with_cycle(definition: PluginWorkflow) -> PluginWorkflow:
    changed = definition.model_copy(deep=True)
    changed.connections.append(edge("c", "b"))
    return changed


# -- random graphs -------------------------------------------------------------------------


async def fuzz(
    h: Harness, rng: random.Random, *, graphs: int = 4, kill: bool = False
) -> dict[str, Expected]:
    """Random valid definitions (DAGs, conditions, ports, modes) run against a reference
    model of the graph semantics; with ``kill`` a worker is SIGKILLed while they run."""
    workers = await h.workers_up(1, standby=1 if kill else 0)
    definitions = [random_definition(rng, h.unique(f"fuzz{i}")) for i in range(graphs)]

    async def start(index: int, definition: PluginWorkflow) -> tuple[str, Expected]:
        input_data = {"graph": index}
        await h.orchestrator.register_workflow(definition)
        run = await h.orchestrator.execute_workflow(definition.workflow_id, input_data)
        return run, expected_run(definition, input_data)

    expected = dict(await asyncio.gather(*(start(*pair) for pair in enumerate(definitions))))
    if kill:
        await asyncio.sleep(rng.random())
        h.kill(workers[0])
        await h.go(workers[1])
    return expected


SCENARIOS = {
    "worker_killed_heartbeating": worker_killed_heartbeating,
    "worker_killed_blocking": worker_killed_blocking,
    "worker_killed_planning": worker_killed_planning,
    "worker_killed_in_light_chain": worker_killed_in_light_chain,
    "sigterm_drain": sigterm_drain,
    "server_killed_mid_run": server_killed_mid_run,
    "server_killed_during_start": server_killed_during_start,
    "partition_zombie": partition_zombie,
    "race": race,
    "pause_running_node": pause_running_node,
    "pause_across_restart": pause_across_restart,
    "cancel_in_backoff": cancel_in_backoff,
    "cycle_while_running": cycle_while_running,
    "fuzz": fuzz,
}
