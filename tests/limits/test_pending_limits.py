"""Temporal's per-run limits on pending work, updates and signals, reached on purpose.

A dev server allows 12 pending activities and 3 pending child workflows per run (2,000 of
each by default), 40 updates per run (``history.maxTotalUpdates``, 2,000 by default; it
suggests continue-as-new at 90%) and 20 signals per run (10,000 by default). Past a pending
limit Temporal fails the run's workflow task, again on every retry: the run is stuck.
``max_in_flight`` keeps every run under the pending limits however EventDriven passes, maps
and parallelism multiply; client and source events always land on a run that can take them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.client import WorkflowHistory

from engine import (
    AdvancedPluginOrchestrator,
    ConnectionType,
    PluginWorkflow,
    WorkflowExecutionMode,
    WorkflowNode,
    WorkflowNodeType,
)
from engine import WorkflowExecutionStatus as Status
from engine.hosting.connection import connect
from engine.hosting.devserver import DevServer
from engine.hosting.worker import create_worker
from engine.runtime.contracts import NODE_ACTIVITY
from tests.helpers import plugins
from tests.helpers.builders import edge, node, workflow
from tests.helpers.histories import count_events, run_histories
from tests.helpers.servers import configured_server
from tests.helpers.waiting import eventually
from tests.long_running.test_event_driven import _router
from tests.replay.replay_all import replayer

PENDING_ACTIVITIES = 12
PENDING_CHILDREN = 3
TOTAL_UPDATES = 40
SIGNALS = 20
LIMITS = {
    "limit.numPendingActivities.error": PENDING_ACTIVITIES,
    "limit.numPendingChildExecutions.error": PENDING_CHILDREN,
    "history.maxTotalUpdates": TOTAL_UPDATES,
    "history.maximumSignalsPerExecution": SIGNALS,
}
_DONE = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
}
_CHILD_DONE = {
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED,
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED,
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED,
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT,
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED,
}


@pytest.fixture(name="limited_server", scope="module")
def fixture_limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    with configured_server(tmp_path_factory.mktemp("temporal-pending"), **LIMITS) as server:
        yield server


@pytest_asyncio.fixture(name="orch", loop_scope="session")
async def fixture_orch(
    limited_server: DevServer, task_queue: str, tmp_path: Path
) -> AsyncIterator[AdvancedPluginOrchestrator]:
    client = await connect(limited_server.address)
    async with create_worker(
        client, task_queue=task_queue, plugins=plugins.test_registry(tmp_path)
    ):
        yield AdvancedPluginOrchestrator(client, task_queue=task_queue, query_timeout=5.0)


def _peak(history: WorkflowHistory, started: EventType.ValueType, done: set[Any]) -> int:
    """Most activities (or children) the run had pending at once."""
    pending = peak = 0
    for event in history.events:
        if event.event_type == started:
            pending += 1
            peak = max(peak, pending)
        elif event.event_type in done:
            pending -= 1
    return peak


def _peak_nodes(history: WorkflowHistory) -> int:
    """Most node activities (not source watchers) the run had pending at once."""
    nodes: set[int] = set()
    pending = peak = 0
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            if event.activity_task_scheduled_event_attributes.activity_type.name == NODE_ACTIVITY:
                nodes.add(event.event_id)
                pending += 1
                peak = max(peak, pending)
        elif event.event_type in _DONE:
            attributes = getattr(event, event.WhichOneof("attributes"))
            if attributes.scheduled_event_id in nodes:
                pending -= 1
    return peak


def _failed_tasks(history: WorkflowHistory) -> list[str]:
    return [
        WorkflowTaskFailedCause.Name(event.workflow_task_failed_event_attributes.cause)
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]


def _fan_out(workflow_id: str, width: int, **settings: object) -> PluginWorkflow:
    leaves = [node(f"leaf{i}", "sleep", seconds=0.3) for i in range(width)]
    definition = workflow(
        workflow_id,
        [node("root"), *leaves, node("join")],
        [edge("root", leaf.node_id) for leaf in leaves]
        + [edge(leaf.node_id, "join", target_port=leaf.node_id) for leaf in leaves],
        mode=WorkflowExecutionMode.Parallel,
    )
    definition.global_configuration.update(settings)
    return definition


async def test_the_server_limit_is_real(
    orch: AdvancedPluginOrchestrator, unique: Any, tmp_path: Path
) -> None:
    """The control: a run that asks for more pending activities than the server allows
    is stuck, its workflow task failing with the limit's cause."""
    definition = _fan_out(unique("over"), 20, max_parallelism=20)
    await orch.register_workflow(definition)
    execution_id = await orch.execute_workflow(definition.workflow_id)
    handle = orch.client.get_workflow_handle(execution_id)
    history = await eventually(
        handle.fetch_history,
        lambda h: (
            "WORKFLOW_TASK_FAILED_CAUSE_PENDING_ACTIVITIES_LIMIT_EXCEEDED" in _failed_tasks(h)
        ),
        timeout=60,
    )
    assert _peak(history, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, _DONE) <= 1
    await handle.terminate("test: the control run is stuck by design")


async def test_a_wide_fan_out_stays_under_the_pending_limit(
    orch: AdvancedPluginOrchestrator, unique: Any, tmp_path: Path
) -> None:
    definition = _fan_out(unique("wide"), 20, max_parallelism=20, max_in_flight=10)
    await orch.register_workflow(definition)
    execution_id = await orch.execute_workflow(definition.workflow_id)
    context = await orch.wait_for_completion(execution_id, 120)
    assert context.status is Status.Completed, context.error_messages
    assert len(context.node_states["join"]["result"]["inputs"]) == 20
    (history,) = await run_histories(orch.client, execution_id)
    assert _failed_tasks(history) == []
    assert _peak(history, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, _DONE) == 10
    await replayer().replay_workflow(history)


async def test_event_passes_share_the_budget(
    orch: AdvancedPluginOrchestrator, unique: Any, tmp_path: Path
) -> None:
    """10 passes at once of a 3-wide graph would be 30 pending activities: the passes share
    what the source watcher leaves of max_in_flight."""
    inbox = _router(unique("unused")).nodes[0]
    definition = workflow(
        unique("passes"),
        [inbox, *(node(f"n{i}", "sleep", seconds=0.3) for i in range(3))],
        [edge("inbox", f"n{i}", ConnectionType.Event) for i in range(3)],
        mode=WorkflowExecutionMode.EventDriven,
    )
    definition.global_configuration.update(max_concurrent_events=10, max_in_flight=10)
    await orch.register_workflow(definition)
    execution_id = await orch.execute_workflow(definition.workflow_id)
    await asyncio.gather(
        *(orch.send_event(execution_id, "n", {"n": n}, event_id=f"e{n}") for n in range(12))
    )
    await eventually(
        lambda: orch.get_execution_status(execution_id),
        lambda c: c.execution_data.get("events_processed") == 12,
        timeout=120,
    )
    await orch.cancel_execution(execution_id)
    await orch.wait_for_completion(execution_id, 60)
    (history,) = await run_histories(orch.client, execution_id)
    assert _failed_tasks(history) == []
    # The watcher's slot stays reserved even after this source (reading nothing) ends: a
    # watcher restarts on resume or a new version. 9 for the nodes.
    assert _peak(history, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, _DONE) <= 10
    assert _peak_nodes(history) == 9
    await replayer().replay_workflow(history)


async def test_map_shards_stay_under_the_child_limit(
    orch: AdvancedPluginOrchestrator, unique: Any, tmp_path: Path
) -> None:
    """10 shards of 4 items could run at once; the server takes 3 pending children."""
    splitter = WorkflowNode(
        node_id="split",
        plugin_id="split",
        node_type=WorkflowNodeType.Splitter,
        configuration={"items": "items", "shard_size": 4, "max_concurrency": 40},
    )
    gather = WorkflowNode(
        node_id="gather", plugin_id="aggregate", node_type=WorkflowNodeType.Aggregator
    )
    definition = workflow(
        unique("shards"),
        [splitter, node("work"), gather],
        [edge("split", "work"), edge("work", "gather")],
        max_in_flight=PENDING_CHILDREN,
    )
    await orch.register_workflow(definition)
    execution_id = await orch.execute_workflow(
        definition.workflow_id, {"items": [{"i": i} for i in range(40)]}
    )
    context = await orch.wait_for_completion(execution_id, 180)
    assert context.status is Status.Completed, context.error_messages
    assert context.node_states["gather"]["result"]["count"] == 40
    (history,) = await run_histories(orch.client, execution_id)
    assert _failed_tasks(history) == []
    started = EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
    assert _peak(history, started, _CHILD_DONE) == PENDING_CHILDREN
    await replayer().replay_workflow(history)


async def test_client_events_outlast_the_update_limit(
    orch: AdvancedPluginOrchestrator, unique: Any
) -> None:
    """Each send_event is an update; a run takes 40. 120 events, each taken once, over
    several runs (the run continues as new when Temporal suggests it, and refuses events
    meanwhile, so senders retry on the next run)."""
    definition = _router(unique("updates"))
    await orch.register_workflow(definition)
    execution_id = await orch.execute_workflow(definition.workflow_id)
    gate = asyncio.Semaphore(5)

    async def send(n: int) -> str:
        async with gate:
            return await orch.send_event(execution_id, "number", {"n": n}, event_id=f"e{n}")

    sent = await asyncio.gather(*(send(n) for n in range(120)))
    assert sorted(sent) == sorted(f"e{n}" for n in range(120))
    context = await eventually(
        lambda: orch.get_execution_status(execution_id),
        lambda c: c.execution_data.get("events_processed") == 120,
        timeout=180,
    )
    assert context.execution_data["events_received"] == 120
    await orch.cancel_execution(execution_id)
    await orch.wait_for_completion(execution_id, 60)
    histories = await run_histories(orch.client, execution_id)
    assert len(histories) >= 3
    for history in histories:
        accepted = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
        assert count_events(history, accepted) < TOTAL_UPDATES
        assert _failed_tasks(history) == []
        await replayer().replay_workflow(history)


async def test_source_events_stay_under_the_signal_limit(
    orch: AdvancedPluginOrchestrator, unique: Any
) -> None:
    """A source signals its events in batches (up to 100 per signal). A run takes
    ``events_per_run`` (100) events, stops the source and continues as new, within 20
    signals; the source reopens at its checkpoint on the next run, and no event is lost or
    doubled (reopened generator sources used to repeat item ids, and the engine dropped
    the new items as duplicates)."""
    inbox = WorkflowNode(
        node_id="inbox",
        plugin_id="numbers",
        node_type=WorkflowNodeType.Source,
        configuration={"count": 600, "delay": 0.002},
    )
    definition = workflow(
        unique("signals"),
        [inbox, node("check")],
        [edge("inbox", "check", ConnectionType.Event)],
        mode=WorkflowExecutionMode.EventDriven,
        events_per_run=100,
    )
    await orch.register_workflow(definition)
    execution_id = await orch.execute_workflow(definition.workflow_id)
    context = await eventually(
        lambda: orch.get_execution_status(execution_id),
        lambda c: c.execution_data.get("events_processed") == 600,
        timeout=180,
    )
    assert context.execution_data["events_received"] == 600  # each once
    await orch.cancel_execution(execution_id)
    await orch.wait_for_completion(execution_id, 60)
    histories = await run_histories(orch.client, execution_id)
    assert len(histories) >= 3
    for history in histories:
        signaled = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        assert count_events(history, signaled) < SIGNALS
        assert _failed_tasks(history) == []
        await replayer().replay_workflow(history)
