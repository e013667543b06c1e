"""Record the histories the replay tests replay.

    python -m tests.replay.record

Runs representative executions and registry changes on a fresh dev server and writes each
history to ``tests/replay/histories/<name>.json``. By default it records only the scenarios
that have no history yet: histories recorded by older versions of the engine are the point
of the replay tests. Never re-record to "fix" a failing replay test: a replay failure means
the change would break runs in flight (put the change behind ``workflow.patched`` instead).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

from temporalio.client import Client

from engine import (
    AdvancedPluginOrchestrator,
    NodeCompensation,
    PluginWorkflow,
    WorkflowConnection,
    WorkflowExecutionContext,
    WorkflowNode,
    WorkflowNodeType,
)
from engine.hosting.connection import connect
from engine.hosting.devserver import DevServer, free_port
from engine.hosting.worker import create_worker
from engine.runtime.contracts import (
    CATALOG_WORKERS_MEMO_KEY,
    DEFINITION_CHANGED_SIGNAL,
    EVENTS_SIGNAL,
    PUBLISH_SIGNAL,
    SUBSCRIBE_SIGNAL,
    WITHDRAW_SIGNAL,
    CatalogEntry,
    IncomingEvent,
    PluginInfo,
    admission_entity_id,
    catalog_entity_id,
    definition_entity_id,
)
from tests.helpers.builders import chain, edge, node, workflow
from tests.helpers.plugins import test_registry
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import eventually
from tests.long_running.test_event_driven import _router
from tests.long_running.test_streaming import _pipeline

HISTORIES = Path(__file__).parent / "histories"
TASK_QUEUE = "replay-recording"


def _scenarios() -> dict[str, PluginWorkflow]:
    fan = [node(f"leaf{i}") for i in range(8)]
    fan_edges = [edge("root", f"leaf{i}") for i in range(8)] + [
        edge(f"leaf{i}", "join", target_port=f"p{i}") for i in range(8)
    ]
    return {
        "sequential_chain": chain("sequential_chain", 4, mode="sequential"),
        "conditional_diamond": workflow(
            "conditional_diamond",
            [
                node("check", emit={"file_valid": True}),
                node("valid"),
                node("invalid"),
                node("join"),
            ],
            [
                edge("check", "valid", condition="file_valid == true"),
                edge("check", "invalid", condition="file_valid == false"),
                edge("valid", "join", target_port="v"),
                edge("invalid", "join", target_port="i"),
            ],
            mode="conditional",
        ),
        "parallel_fan_out": workflow(
            "parallel_fan_out",
            [node("root"), *fan, node("join")],
            fan_edges,
            max_parallelism=3,
        ),
        "failure_after_retries": workflow(
            "failure_after_retries",
            [node("ok"), node("bad", "fail"), node("never")],
            [edge("ok", "bad"), edge("bad", "never")],
            retry={"max_attempts": 2, "initial_interval": 0.1},
        ),
        "retry_then_success": workflow(
            "retry_then_success",
            [node("flaky", "flaky", succeed_on=2, retry={"initial_interval": 0.1})],
        ),
        "bad_output": workflow("bad_output", [node("n", "bad_output")]),
        "paused_and_resumed": workflow(
            "paused_and_resumed",
            [node("a", "sleep", seconds=1), node("b")],
            [edge("a", "b")],
        ),
        "cancelled": workflow("cancelled", [node("a", "sleep", seconds=30, heartbeat_timeout=2)]),
        # Light nodes: see _light_mixed; and the same graph with the workflow retrying
        # light nodes, one local activity per attempt (patch light-node-retries).
        "light_mixed": _light_mixed("light_mixed"),
        "light_mixed_workflow_retries": _light_mixed("light_mixed_workflow_retries"),
        # A chain of light nodes longer than one workflow task takes (a timer ends the task).
        "light_long_chain": chain(
            "light_long_chain", 210, "light_echo", mode="sequential", execution="auto"
        ),
        "batched_map": workflow(
            "batched_map",
            [
                node("list", emit={"numbers": [{"n": n} for n in range(8)]}),
                WorkflowNode(
                    node_id="split",
                    plugin_id="split",
                    node_type=WorkflowNodeType.Splitter,
                    configuration={"items": "list.numbers", "batch_size": 3, "max_concurrency": 6},
                ),
                node("work", "flaky", succeed_on=2, retry={"initial_interval": 0.1}),
                WorkflowNode(
                    node_id="gather", plugin_id="aggregate", node_type=WorkflowNodeType.Aggregator
                ),
                node("report"),
            ],
            [
                edge("list", "split"),
                edge("split", "work"),
                edge("work", "gather"),
                edge("gather", "report"),
            ],
        ),
        # A condition about the item on the edge into a map: before the map-entry-edges patch
        # the map failed as it ended (the condition evaluated again on the splitter's
        # summary); the same definition recorded after it completes.
        "map_entry_condition_before_patch": _map_entry_condition(
            "map_entry_condition_before_patch"
        ),
        "map_entry_condition": _map_entry_condition("map_entry_condition"),
        # Runs that end with their outcome in the compact form (patch compact-outcome):
        # completed (the result), failed (the failure's details), cancelled (the memo).
        "compact_outcome_completed": chain("compact_outcome_completed", 5, mode="sequential"),
        "compact_outcome_failed": workflow(
            "compact_outcome_failed",
            [node("ok"), node("bad", "fail", retry={"max_attempts": 1}), node("never")],
            [edge("ok", "bad"), edge("bad", "never")],
        ),
        "compact_outcome_cancelled": workflow(
            "compact_outcome_cancelled",
            [node("first"), node("a", "sleep", seconds=30, heartbeat_timeout=2)],
            [edge("first", "a")],
        ),
        "in_flight_budget": workflow(
            "in_flight_budget",
            [node("root"), *fan, node("join")],
            fan_edges,
            max_parallelism=8,
            max_in_flight=2,
        ),
        # Node activities with their lean input (contracts.lean_node_request): one node with
        # a configuration (kept), the others without.
        "lean_node_input": workflow(
            "lean_node_input",
            [node("root", emit={"tag": "cfg"}), *fan, node("join")],
            fan_edges,
        ),
    }


def _light_mixed(name: str) -> PluginWorkflow:
    """Activity and local nodes (auto by the catalog, and explicit) in one graph, a local
    node retried, another failing into an error route."""
    return workflow(
        name,
        [
            node("start", emit={"seed": 2}),
            node("shape", "json_transform", mapping={"x": "start.seed"}),
            node(
                "flaky",
                "flaky",
                succeed_on=2,
                execution="local",
                retry={"initial_interval": 0.1},
            ),
            node(
                "risky",
                "fail",
                execution="local",
                retry={"max_attempts": 2, "initial_interval": 0.1},
            ),
            node("handler", "light_echo"),
            node("join"),
        ],
        [
            edge("start", "shape"),
            edge("shape", "flaky"),
            edge("start", "risky"),
            _error_route("risky", "handler"),
            edge("flaky", "join", target_port="flaky"),
            edge("handler", "join", target_port="handler"),
        ],
        execution="auto",
    )


def _map_entry_condition(name: str) -> PluginWorkflow:
    return workflow(
        name,
        [
            node("list", emit={"numbers": [{"n": n} for n in range(4)]}),
            WorkflowNode(
                node_id="split",
                plugin_id="split",
                node_type=WorkflowNodeType.Splitter,
                configuration={"items": "list.numbers"},
            ),
            node("square"),
            WorkflowNode(
                node_id="gather", plugin_id="aggregate", node_type=WorkflowNodeType.Aggregator
            ),
            node("report"),
        ],
        [
            edge("list", "split"),
            edge("split", "square", condition="item.n > 1"),
            edge("square", "gather"),
            edge("gather", "report"),
        ],
    )


def _error_route(source: str, target: str) -> WorkflowConnection:
    route = edge(source, target)
    route.properties = {"on": "error"}
    return route


async def _record(client: Client, handle_id: str, name: str, run_id: str | None = None) -> None:
    history = await client.get_workflow_handle(handle_id, run_id=run_id).fetch_history()
    data = _scrub(json.loads(history.to_json()))
    (HISTORIES / f"{name}.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"recorded {name}: {len(history.events)} events")


def _scrub(value: object) -> object:
    """Drop what would leak the recording machine (stack traces with paths, host names);
    replay depends on neither."""
    if isinstance(value, dict):
        return {
            key: "" if key == "stackTrace" else "recorder" if key == "identity" else _scrub(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_scrub(item) for item in value]
    if isinstance(value, str) and socket.gethostname() in value:
        return "recorder"  # e.g. the sticky task queue name "pid@host-uuid"
    return value


async def _until_running(orch: AdvancedPluginOrchestrator, execution_id: str, node_id: str) -> None:
    await eventually(
        lambda: orch.get_node_status(execution_id, node_id), lambda s: s["status"] == "running"
    )


async def _batch(orch: AdvancedPluginOrchestrator, name: str) -> str:
    definition = _scenarios()[name]
    await orch.register_workflow(definition)
    execution_id = await orch.execute_workflow(name, {"scenario": name})
    if name == "paused_and_resumed":
        await _until_running(orch, execution_id, "a")
        await orch.pause_execution(execution_id)
        await asyncio.sleep(1.5)
        await orch.resume_execution(execution_id)
    if name in ("cancelled", "compact_outcome_cancelled"):
        await _until_running(orch, execution_id, "a")
        await orch.cancel_execution(execution_id)
    await orch.wait_for_completion(execution_id, 60)
    return execution_id


async def _registry_entity(orch: AdvancedPluginOrchestrator, name: str) -> str:
    """A registry entity through its life: register, modify, reject, unregister."""
    await orch.register_workflow(chain(name, 2))
    await orch.add_node_to_workflow(name, node("n2"))
    await orch.add_connection_to_workflow(name, edge("n1", "n2"))
    try:
        await orch.add_connection_to_workflow(name, edge("n2", "n0"))
    except Exception as exc:
        print(f"rejected as expected: {exc}")
    await orch.remove_node_from_workflow(name, "n0")
    await orch.unregister_workflow(name)
    entity_id = definition_entity_id(name, TASK_QUEUE)
    await orch.client.get_workflow_handle(entity_id).result()
    return entity_id


async def _catalog_entity(orch: AdvancedPluginOrchestrator, name: str) -> str:
    """The task queue's catalog entity: an entry refused past its bounds (patch
    catalog-bounds), a burst of entries in one memo upsert (patch
    catalog-memo-once-per-task), a withdrawal."""
    entity_id = catalog_entity_id(TASK_QUEUE)
    handle = orch.client.get_workflow_handle(entity_id)
    refused = CatalogEntry(identity="x" * 300, plugins=[PluginInfo(plugin_id="echo")])
    await handle.signal(PUBLISH_SIGNAL, refused)
    for number in range(3):
        entry = CatalogEntry(identity=f"extra{number}", plugins=[PluginInfo(plugin_id="echo")])
        await handle.signal(PUBLISH_SIGNAL, entry)
    await handle.signal(WITHDRAW_SIGNAL, "extra0")

    async def workers() -> list[str]:
        return await (await handle.describe()).memo_value(CATALOG_WORKERS_MEMO_KEY, [])

    await eventually(workers, lambda ids: "extra2" in ids and "extra0" not in ids)
    return entity_id


async def _event_driven(orch: AdvancedPluginOrchestrator, name: str) -> str:
    """Events from a client and a finite source, a duplicate, a pause, a new version,
    cancellation."""
    definition = _router(name)
    definition.nodes[0].configuration = {"count": 2}  # the source emits two events itself
    await orch.register_workflow(definition)
    execution_id = await orch.execute_workflow(name)
    for n in (5, 50, 5):
        await orch.send_event(execution_id, "number", {"n": n}, event_id=f"e{n}")
    await _processed(orch, execution_id, 4)
    await orch.pause_execution(execution_id)
    await orch.resume_execution(execution_id)
    await orch.add_node_to_workflow(name, node("audit"))
    await orch.add_connection_to_workflow(name, edge("small", "audit"))
    await eventually(
        lambda: orch.get_execution_status(execution_id),
        lambda c: c.execution_data["workflow_version"] == 3,
    )
    await orch.send_event(execution_id, "number", {"n": 7}, event_id="e7")
    await _processed(orch, execution_id, 5)
    await orch.cancel_execution(execution_id)
    await orch.wait_for_completion(execution_id, 60)
    return execution_id


async def _streaming(orch: AdvancedPluginOrchestrator, name: str) -> str:
    """A stream paused, resumed, redeployed with a filter, then read to its end."""
    definition = _pipeline(name, 400, delay=0.005, batch_size=20, progress_interval=0.5)
    await orch.register_workflow(definition)
    execution_id = await orch.execute_workflow(name)
    await asyncio.sleep(0.5)
    await orch.pause_execution(execution_id)
    await asyncio.sleep(1.0)
    await orch.resume_execution(execution_id)
    await asyncio.sleep(0.3)
    changed = definition.model_copy(deep=True)
    changed.connections[1] = edge("double", "sink", condition="n % 4 == 0")
    await orch.update_workflow(changed)
    await orch.wait_for_completion(execution_id, 60)
    return execution_id


async def _batch_continued(orch: AdvancedPluginOrchestrator, name: str) -> str:
    """A Sequential chain whose history budget (1,000 events) makes it continue as new: the
    first run (drain, then continue-as-new) is kept as ``<name>_first_run``, the last (it
    starts from the carried state) as ``<name>``."""
    definition = chain(name, 200, "count", mode="sequential", max_history_events=1000)
    await orch.register_workflow(definition)
    execution_id = await orch.execute_workflow(name, {"scenario": name})
    await orch.wait_for_completion(execution_id, 300)
    runs = [run async for run in orch.client.list_workflows(f'WorkflowId = "{execution_id}"')]
    first = min(runs, key=lambda run: run.start_time)
    await _record(orch.client, execution_id, f"{name}_first_run", run_id=first.run_id)
    return execution_id


async def _definition_checks(orch: AdvancedPluginOrchestrator, name: str) -> str:
    """An EventDriven run (its first Temporal run, recorded as ``<name>``) that is sent a
    definition by signal (only a notice: it reads its registry and adopts nothing), an event
    out of bounds by signal (dropped), then a real change (read, checked, adopted), and
    continues as new after 100 events with its state fitted. Its registry entity, which
    sends notices and ignores a subscription that is not one of its executions, is recorded
    as ``<name>_registry``."""
    definition = _router(name, events_per_run=100)
    await orch.register_workflow(definition)
    execution_id = await orch.execute_workflow(name)
    handle = orch.client.get_workflow_handle(execution_id)
    await orch.send_event(execution_id, "number", {"n": 5}, event_id="e5")
    await _processed(orch, execution_id, 1)
    injected = definition.model_copy(deep=True, update={"version": 99})
    injected.nodes.append(node("exfil"))
    injected.connections.append(edge("check", "exfil"))
    await handle.signal(DEFINITION_CHANGED_SIGNAL, injected)
    await handle.signal(EVENTS_SIGNAL, {"events": [{"event_id": "big", "event_type": "t" * 300}]})
    entity = orch.client.get_workflow_handle(definition_entity_id(name, TASK_QUEUE))
    await entity.signal(SUBSCRIBE_SIGNAL, {"execution_id": "not-an-execution", "version": 1})
    await orch.add_node_to_workflow(name, node("audit"))
    await orch.add_connection_to_workflow(name, edge("small", "audit"))
    await eventually(
        lambda: orch.get_execution_status(execution_id),
        lambda c: c.execution_data["workflow_version"] == 3,
    )
    await orch.send_event(execution_id, "number", {"n": 7}, event_id="e7")
    await _processed(orch, execution_id, 2)
    events = [
        IncomingEvent(event_id=f"bulk{n}", event_type="number", payload={"n": n})
        for n in range(100)
    ]
    await orch.send_events(execution_id, events)
    await _processed(orch, execution_id, 102)
    await orch.cancel_execution(execution_id)
    await orch.wait_for_completion(execution_id, 60)
    runs = [run async for run in orch.client.list_workflows(f'WorkflowId = "{execution_id}"')]
    first = min(runs, key=lambda run: run.start_time)
    await orch.unregister_workflow(name)
    await entity.result()
    await _record(orch.client, entity.id, f"{name}_registry")
    await _record(orch.client, execution_id, name, run_id=first.run_id)
    return ""


async def _processed(orch: AdvancedPluginOrchestrator, execution_id: str, count: int) -> None:
    await eventually(
        lambda: orch.get_execution_status(execution_id),
        lambda c: c.execution_data.get("events_processed") == count,
    )


async def _killed_workers(
    orch: AdvancedPluginOrchestrator, definition: PluginWorkflow, steps: list[str]
) -> str:
    """Run ``definition`` on worker processes of a task queue of its own and follow
    ``steps``: "kill" (SIGKILL the worker while the source runs; the next one restarts it
    from its last heartbeat), "pause-kill" / "cancel-kill" (the request, then SIGKILL before
    the source acknowledges: a timeout after the stop was asked for), "resume", "wait" (the
    execution reports more progress)."""
    queue = f"{TASK_QUEUE}-{definition.workflow_id}"
    address = orch.client.service_client.config.target_host
    own = AdvancedPluginOrchestrator(orch.client, task_queue=queue, query_timeout=15.0)
    await own.register_workflow(definition)
    with tempfile.TemporaryDirectory() as tmp:
        worker = WorkerProcess(address, queue, Path(tmp))
        try:
            execution_id = await own.execute_workflow(definition.workflow_id)
            await _more_progress(own, execution_id)
            for step in steps:
                if step == "wait":
                    await _more_progress(own, execution_id)
                    continue
                if step == "resume":
                    await own.resume_execution(execution_id)
                    continue
                if step == "pause-kill":
                    await own.pause_execution(execution_id)
                if step == "cancel-kill":
                    await own.cancel_execution(execution_id)
                worker.kill()
                worker = await asyncio.to_thread(WorkerProcess, address, queue, Path(tmp))
            await own.wait_for_completion(execution_id, 120)
        finally:
            worker.kill()
    return execution_id


async def _more_progress(orch: AdvancedPluginOrchestrator, execution_id: str) -> None:
    def done(context: WorkflowExecutionContext) -> int:
        data = context.execution_data
        return int(data.get("events_processed", data.get("items_read")) or 0)

    start = done(await orch.get_execution_status(execution_id))
    await eventually(
        lambda: orch.get_execution_status(execution_id),
        lambda c: done(c) >= start + 3,
        timeout=60,
    )


async def _event_source_worker_lost(orch: AdvancedPluginOrchestrator, name: str) -> str:
    """A source whose worker dies while it reads (restarted, not counted), then right after
    a pause (a stopped source), then right after cancellation."""
    definition = _router(name)
    definition.nodes[0].configuration = {"delay": 0.1, "heartbeat_timeout": 1}
    steps = ["kill", "wait", "pause-kill", "resume", "wait", "cancel-kill"]
    return await _killed_workers(orch, definition, steps)


async def _stream_worker_lost(orch: AdvancedPluginOrchestrator, name: str) -> str:
    """A stream whose worker dies while it runs, then right after a pause, then right after
    cancellation."""
    definition = _pipeline(name, None, delay=0.01, batch_size=20, progress_interval=0.5)
    definition.nodes[0].configuration["heartbeat_timeout"] = 1
    steps = ["kill", "wait", "pause-kill", "resume", "wait", "cancel-kill"]
    return await _killed_workers(orch, definition, steps)


async def _skipped_after_failure(orch: AdvancedPluginOrchestrator, name: str) -> str:
    """A run fails; skip_node retries it with the failed node given an output: recorded is
    the retry, which goes on from the earlier node records (patch retry-keeps-records)."""
    definition = workflow(
        name,
        [
            node("ok"),
            node("bad", "fail", retry={"max_attempts": 2, "initial_interval": 0.1}),
            node("after"),
        ],
        [edge("ok", "bad"), edge("bad", "after", target_port="fixed")],
    )
    await orch.register_workflow(definition)
    execution_id = await orch.execute_workflow(name, {"scenario": name})
    await orch.wait_for_completion(execution_id, 60)
    await orch.skip_node(execution_id, "bad", {"fixed": True})
    await orch.wait_for_completion(execution_id, 60)
    return execution_id


async def _controls_in_own_task(orch: AdvancedPluginOrchestrator, name: str) -> str:
    """A Parallel run paused while two nodes run, resumed after both ended, then a running
    node skipped: resume and skip take effect in workflow tasks of their own (patch
    control-in-own-task)."""
    definition = workflow(
        name,
        [
            node("a", "sleep", seconds=1.0),
            node("b"),
            node("x", "sleep", seconds=0.2),
            node("y"),
            node("slow", "sleep", seconds=30, heartbeat_timeout=2),
        ],
        [edge("a", "b"), edge("x", "y"), edge("b", "slow"), edge("y", "slow", target_port="y")],
        max_parallelism=2,
    )
    await orch.register_workflow(definition)
    execution_id = await orch.execute_workflow(name, {"scenario": name})
    await _until_running(orch, execution_id, "a")
    await orch.pause_execution(execution_id)
    await eventually(
        lambda: orch.get_node_status(execution_id, "a"), lambda s: s["status"] == "completed"
    )
    await orch.resume_execution(execution_id)
    await _until_running(orch, execution_id, "slow")
    await orch.skip_node(execution_id, "slow", {"slept": 0})
    await orch.wait_for_completion(execution_id, 60)
    return execution_id


async def _event_resumed(orch: AdvancedPluginOrchestrator, name: str) -> str:
    """An EventDriven run paused with events queued and resumed once its source stopped: the
    source starts again before the queued passes (patches sources-restart-before-passes and
    control-in-own-task)."""
    definition = _router(name)
    definition.nodes[0].configuration = {"delay": 3600, "heartbeat_timeout": 2}
    await orch.register_workflow(definition)
    execution_id = await orch.execute_workflow(name)

    def watching(running: int) -> Callable[[WorkflowExecutionContext], bool]:
        return lambda c: c.node_states["inbox"]["counters"]["running"] == running

    await eventually(lambda: orch.get_execution_status(execution_id), watching(1))
    await orch.pause_execution(execution_id)
    for n in (5, 50):
        await orch.send_event(execution_id, "number", {"n": n}, event_id=f"e{n}")
    await eventually(lambda: orch.get_execution_status(execution_id), watching(0))
    await orch.resume_execution(execution_id)
    await _processed(orch, execution_id, 2)
    await eventually(lambda: orch.get_execution_status(execution_id), watching(1))
    await orch.cancel_execution(execution_id)
    await orch.wait_for_completion(execution_id, 60)
    return execution_id


def _compensated(name: str, last: WorkflowNode) -> PluginWorkflow:
    """reserve -> charge -> notify -> last, Sequential: reserve's compensation works, charge's
    fails its first attempt (retried), notify's always fails."""
    quick = {"max_attempts": 2, "initial_interval": 0.1}
    nodes = [node("reserve"), node("charge"), node("notify"), last]
    undo = {"reserve": {}, "charge": {"fail_attempts": 1}, "notify": {"fail_attempts": -1}}
    for made in nodes[:3]:
        made.compensation = NodeCompensation(
            plugin_id="undo", configuration={"retry": quick, **undo[made.node_id]}
        )
    return workflow(
        name,
        nodes,
        [edge("reserve", "charge"), edge("charge", "notify"), edge("notify", last.node_id)],
        mode="sequential",
    )


async def _compensated_failure(orch: AdvancedPluginOrchestrator, name: str) -> str:
    """A run fails: its completed nodes are compensated backwards, one compensation retried
    and one failing for good (patch compensation)."""
    definition = _compensated(name, node("ship", "fail", retry={"max_attempts": 1}))
    await orch.register_workflow(definition)
    execution_id = await orch.execute_workflow(name, {"scenario": name})
    await orch.wait_for_completion(execution_id, 60)
    return execution_id


async def _compensated_cancel(orch: AdvancedPluginOrchestrator, name: str) -> str:
    """A run is cancelled while its last node runs: the completed nodes are compensated
    before it ends cancelled (patch compensation)."""
    last = node("ship", "sleep", seconds=30, heartbeat_timeout=2)
    definition = _compensated(name, last)
    await orch.register_workflow(definition)
    execution_id = await orch.execute_workflow(name, {"scenario": name})
    await _until_running(orch, execution_id, "ship")
    await orch.cancel_execution(execution_id)
    await orch.wait_for_completion(execution_id, 60)
    return execution_id


async def _concurrency_capped(orch: AdvancedPluginOrchestrator, name: str) -> str:
    """A definition with max_concurrent_executions 1: a run that queues until the first one
    ends (recorded as ``<name>``; patch concurrency-admission), one cancelled while queued
    (``<name>_cancelled_queued``), and the definition's admission workflow
    (``<name>_admission``, still running)."""
    definition = workflow(name, [node("a", "sleep", seconds=1.0)], max_concurrent_executions=1)
    await orch.register_workflow(definition)
    first = await orch.execute_workflow(name, {"scenario": name})
    queued = await orch.execute_workflow(name, {"scenario": name})
    cancelled = await orch.execute_workflow(name, {"scenario": name})
    await eventually(
        lambda: orch.get_execution_status(cancelled), lambda c: c.status.value == "queued"
    )
    await orch.cancel_execution(cancelled)
    for execution_id in (first, queued, cancelled):
        await orch.wait_for_completion(execution_id, 60)
    await _record(orch.client, cancelled, f"{name}_cancelled_queued")
    await _record(orch.client, admission_entity_id(name, TASK_QUEUE), f"{name}_admission")
    return queued


RECORDERS = {
    **dict.fromkeys(_scenarios(), _batch),
    "registry_entity": _registry_entity,
    # The same life with the version in the memo (patch definition-version-memo).
    "registry_entity_version_memo": _registry_entity,
    "event_driven": _event_driven,
    "streaming": _streaming,
    "batch_continued_as_new": _batch_continued,
    "definition_checks": _definition_checks,
    "event_source_worker_lost": _event_source_worker_lost,
    "stream_worker_lost": _stream_worker_lost,
    "skipped_after_failure": _skipped_after_failure,
    "controls_in_own_task": _controls_in_own_task,
    "event_resumed": _event_resumed,
    "compensated_failure": _compensated_failure,
    "compensated_cancel": _compensated_cancel,
    "concurrency_capped": _concurrency_capped,
    "catalog_entity": _catalog_entity,
}


async def main(names: list[str], force: bool) -> None:
    """Record the named scenarios (default: those without a history yet)."""
    HISTORIES.mkdir(parents=True, exist_ok=True)
    wanted = names or [n for n in RECORDERS if not (HISTORIES / f"{n}.json").exists()]
    if not force:
        existing = [n for n in wanted if (HISTORIES / f"{n}.json").exists()]
        if existing:
            raise SystemExit(f"already recorded (use --force to replace): {', '.join(existing)}")
    if not wanted:
        print("every scenario is recorded")
        return
    with tempfile.TemporaryDirectory() as tmp:
        server = DevServer(Path(tmp) / "server", port=free_port(), ui_port=0).start()
        try:
            client = await connect(server.address)
            orch = AdvancedPluginOrchestrator(client, task_queue=TASK_QUEUE)
            async with create_worker(
                client, task_queue=TASK_QUEUE, plugins=test_registry(Path(tmp))
            ):
                for name in wanted:
                    recorded = await RECORDERS[name](orch, name)
                    if recorded:  # else the recorder recorded its histories itself
                        await _record(client, recorded, name)
        finally:
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="scenarios to record (default: missing ones)")
    parser.add_argument("--force", action="store_true", help="replace existing histories")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.names, arguments.force))
