"""Temporal's history limits, reached on purpose: a dev server whose limits are shrunk by
dynamic config (continue-as-new suggested at 150 events or 200 KB, the run terminated at
400 events or 600 KB). Batch runs far longer than that must complete, every node run once, by
continuing as new before the hard limits; every run of the chain must replay."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import WorkflowExecutionStatus, WorkflowHistory

from engine import AdvancedPluginOrchestrator, PluginWorkflow
from engine import WorkflowExecutionStatus as Status
from engine.hosting.connection import connect
from engine.hosting.devserver import DevServer
from engine.hosting.worker import create_worker
from tests.helpers import plugins
from tests.helpers.builders import chain, edge, node, workflow
from tests.helpers.histories import run_histories
from tests.helpers.servers import configured_server
from tests.helpers.waiting import eventually
from tests.replay.replay_all import replayer

HARD_EVENTS = 400
HARD_BYTES = 600_000
LIMITS = {
    "limit.historyCount.suggestContinueAsNew": 150,
    "limit.historyCount.warn": 300,
    "limit.historyCount.error": HARD_EVENTS,
    "limit.historySize.suggestContinueAsNew": 200_000,
    "limit.historySize.warn": 400_000,
    "limit.historySize.error": HARD_BYTES,
}


@pytest.fixture(name="small_server", scope="module")
def fixture_small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    with configured_server(tmp_path_factory.mktemp("temporal-limits"), **LIMITS) as server:
        yield server


@pytest_asyncio.fixture(name="orch", loop_scope="session")
async def fixture_orch(
    small_server: DevServer, task_queue: str, tmp_path: Path
) -> AsyncIterator[AdvancedPluginOrchestrator]:
    """An orchestrator and a worker with the workflow cache off (every task replays)."""
    client = await connect(small_server.address)
    async with create_worker(
        client,
        task_queue=task_queue,
        plugins=plugins.test_registry(tmp_path),
        max_cached_workflows=0,
    ):
        yield AdvancedPluginOrchestrator(client, task_queue=task_queue, query_timeout=5.0)


async def _check(
    orch: AdvancedPluginOrchestrator,
    definition: PluginWorkflow,
    execution_id: str,
    side: Path,
    more_events: int = 0,
) -> list[WorkflowHistory]:
    context = await orch.wait_for_completion(execution_id, 240)
    assert context.status is Status.Completed, context.error_messages
    states = context.node_states
    assert {s["status"] for s in states.values()} == {"completed"}
    assert len(states) == len(definition.nodes)
    for node_id in states:  # each node ran once: its side effect happened once
        assert plugins.read_count(side, node_id) == 1, node_id
    # The ended run keeps the last events (older ones were dropped when it continued as
    # new), numbered on from the first run's: started, then per node started, completed
    # and progress, then completed (and ``more_events``: pause, resume).
    events = [event async for event in orch.events(execution_id)]
    first = events[0].sequence
    assert [e.sequence for e in events] == list(range(first, first + len(events)))
    assert events[-1].sequence == 3 * len(definition.nodes) + 2 + more_events
    assert events[-1].type.value == "workflow_completed"

    histories = await run_histories(orch.client, execution_id)
    assert len(histories) > 1, "the run never continued as new"
    for history in histories:
        assert len(history.events) < HARD_EVENTS
        assert sum(event.ByteSize() for event in history.events) < HARD_BYTES
        await replayer().replay_workflow(history)
    closed = [
        await orch.client.get_workflow_handle(execution_id, run_id=h.run_id).describe()
        for h in histories
    ]
    assert [d.status for d in closed[:-1]] == [WorkflowExecutionStatus.CONTINUED_AS_NEW] * (
        len(closed) - 1
    )
    return histories


async def test_a_long_sequential_chain_continues_as_new(
    orch: AdvancedPluginOrchestrator, unique, tmp_path: Path
) -> None:
    definition = chain(unique("chain"), 120, "count", mode="sequential")
    await orch.register_workflow(definition)
    execution_id = await orch.execute_workflow(definition.workflow_id, {"go": 1})
    # A follower from the start reads across the runs: in order, never twice, to the end.
    followed = [event.sequence async for event in orch.events(execution_id)]
    assert followed == sorted(set(followed))
    assert followed[-1] == 3 * 120 + 2
    histories = await _check(orch, definition, execution_id, tmp_path)
    assert len(histories) >= 4  # 120 nodes x 6 events over runs of about 150 events


async def test_a_wide_parallel_fan_out_continues_as_new(
    orch: AdvancedPluginOrchestrator, unique, tmp_path: Path
) -> None:
    leaves = [node(f"leaf{i}", "count") for i in range(60)]
    definition = workflow(
        unique("fan"),
        [node("root", "count"), *leaves, node("join", "count")],
        [edge("root", leaf.node_id) for leaf in leaves]
        + [edge(leaf.node_id, "join", target_port=leaf.node_id) for leaf in leaves],
        max_parallelism=8,
    )
    await orch.register_workflow(definition)
    execution_id = await orch.execute_workflow(definition.workflow_id)
    await _check(orch, definition, execution_id, tmp_path)
    context = await orch.get_execution_status(execution_id)
    assert context.node_states["join"]["status"] == "completed"


async def test_large_outputs_continue_as_new_by_history_size(
    orch: AdvancedPluginOrchestrator, unique, tmp_path: Path
) -> None:
    """20 outputs of 40 KB: 800 KB in one history would pass the 600 KB hard limit."""
    definition = chain(unique("big"), 20, "big_output", mode="sequential")
    for each in definition.nodes:
        each.configuration = {"size": 40_000}
    await orch.register_workflow(definition)
    execution_id = await orch.execute_workflow(definition.workflow_id)
    await _check(orch, definition, execution_id, tmp_path)


async def test_a_pause_carries_across_continue_as_new(
    orch: AdvancedPluginOrchestrator, unique, tmp_path: Path
) -> None:
    definition = chain(unique("paused"), 60, "count", mode="sequential")
    definition.nodes[30].plugin_id = "sleep"
    definition.nodes[30].configuration = {"seconds": 1.0}
    await orch.register_workflow(definition)
    execution_id = await orch.execute_workflow(definition.workflow_id)
    await eventually(
        lambda: orch.get_node_status(execution_id, "n30"),
        lambda s: s["status"] == "running",
        timeout=120,
    )
    await orch.pause_execution(execution_id)
    # n30 finishes, nothing new starts, and the status stays paused whichever run answers.
    await eventually(
        lambda: orch.get_node_status(execution_id, "n30"), lambda s: s["status"] == "completed"
    )
    context = await orch.get_execution_status(execution_id)
    assert context.status is Status.Paused
    assert context.node_states["n31"]["status"] == "pending"
    await orch.resume_execution(execution_id)
    await _check(orch, definition, execution_id, tmp_path, more_events=2)


async def test_a_retry_of_a_run_that_continued_as_new_runs_only_what_failed(
    orch: AdvancedPluginOrchestrator, unique, tmp_path: Path
) -> None:
    """The failed run's latest Temporal run started from a carried state; its retry starts
    from the outcome (every completed node kept with its record), not from that state."""
    definition = chain(unique("retry-long"), 40, "count", mode="sequential")
    last = definition.nodes[-1]
    last.plugin_id = "fail_times"
    last.configuration = {"times": 1, "retry": {"max_attempts": 1}}
    await orch.register_workflow(definition)
    execution_id = await orch.execute_workflow(definition.workflow_id)
    failed = await orch.wait_for_completion(execution_id, 120)
    assert failed.status is Status.Failed
    assert len(await run_histories(orch.client, execution_id)) > 1  # it continued as new

    await orch.retry_execution(execution_id)
    context = await orch.wait_for_completion(execution_id, 120)
    assert context.status is Status.Completed, context.error_messages
    assert context.start_time == failed.start_time
    assert context.progress == 1.0
    for each in definition.nodes[:-1]:  # never run again, their records kept
        assert plugins.read_count(tmp_path, each.node_id) == 1, each.node_id
        assert context.node_states[each.node_id] == failed.node_states[each.node_id]
    assert plugins.read_count(tmp_path, last.node_id) == 2
    assert context.node_states[last.node_id]["attempts"] == 2
