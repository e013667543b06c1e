"""What an execution writes to Temporal's history, against a hand-written workflow's.

A 100-node Sequential chain of no-op nodes and ``bench.baseline.BaselineChain`` (the same
activities called directly, with inputs and results shaped like the engine's) run on the
same server: per node, the engine's history may hold at most 1.3x the hand-written one's
bytes and events (issue 13's target; ``python -m bench.history_size`` prints where the bytes
go). The engine's extra is its definition in the start event (about 100 B a node), two patch
markers and search-attribute upserts, and the outcome it stores as its result (about 100 B a
node in the compact form, 800 B in the plain form it had before the ``compact-outcome``
patch).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from bench.baseline import BaselineChain, noop_activity
from engine import AdvancedPluginOrchestrator, PluginWorkflow, WorkflowExecutionStatus
from engine.hosting.connection import with_pydantic_converter
from engine.hosting.worker import create_worker
from engine.temporal.sandbox import workflow_runner
from plugins import PluginRegistry
from tests.helpers.builders import chain

NODES = 100
RATIO = 1.3
# The compact outcome of this chain, per node (the unit test of the form bounds it at 120 B
# with a distinct output per node; here every node returns the same).
OUTCOME_BYTES_PER_NODE = 120


async def _noop(inputs: dict[str, Any], config: dict[str, Any], ctx: Any) -> dict[str, Any]:
    return {"ok": True}


async def _history(client: Client, workflow_id: str) -> tuple[int, int, int]:
    """Events, bytes, and bytes of the closing event of a run's history."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    events = list(history.events)
    closing = events[-1]
    assert closing.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
    return len(events), sum(event.ByteSize() for event in events), closing.ByteSize()


async def test_a_chain_writes_at_most_a_third_more_history_than_hand_written_code(
    client: Client,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    engine_queue, baseline_queue = f"history-engine-{suffix}", f"history-baseline-{suffix}"
    registry = PluginRegistry()
    registry.register("noop", _noop, description="returns {'ok': True}")
    definition: PluginWorkflow = chain(f"history-{suffix}", NODES, "noop", mode="sequential")
    orchestrator = AdvancedPluginOrchestrator(client, task_queue=engine_queue)
    baseline_id = f"history-baseline-{suffix}"
    async with (
        create_worker(client, task_queue=engine_queue, plugins=registry, graceful_shutdown=5.0),
        Worker(
            with_pydantic_converter(client),
            task_queue=baseline_queue,
            workflows=[BaselineChain],
            activities=[noop_activity],
            graceful_shutdown_timeout=timedelta(seconds=5),
            workflow_runner=workflow_runner(),
        ),
    ):
        await orchestrator.register_workflow(definition)
        execution_id = await orchestrator.execute_workflow(definition.workflow_id, {"x": 1})
        context = await orchestrator.wait_for_completion(execution_id, timeout=120)
        assert context.status is WorkflowExecutionStatus.Completed
        await client.execute_workflow(
            BaselineChain.run,
            {"workflow_id": "baseline-chain", "nodes": NODES, "input_data": {"x": 1}},
            id=baseline_id,
            task_queue=baseline_queue,
            execution_timeout=timedelta(seconds=120),
        )
    engine_events, engine_bytes, outcome_bytes = await _history(client, execution_id)
    baseline_events, baseline_bytes, _ = await _history(client, baseline_id)
    figures = (
        f"engine {engine_bytes / NODES:.0f} B and {engine_events / NODES:.2f} events a node, "
        f"hand-written {baseline_bytes / NODES:.0f} B and {baseline_events / NODES:.2f}"
    )
    assert engine_bytes <= RATIO * baseline_bytes, figures
    assert engine_events <= RATIO * baseline_events, figures
    assert outcome_bytes <= OUTCOME_BYTES_PER_NODE * NODES, f"outcome: {outcome_bytes:,} B"

    # Nothing the readers show is lost: with no worker running, the closed run's nodes and
    # events read from its stored outcome as they did from the plain form.
    status = await orchestrator.get_execution_status(execution_id)
    assert status.node_states["n99"]["result"] == {"ok": True}
    assert status.node_states["n0"]["started_at"] < status.node_states["n0"]["completed_at"]
    events = [event async for event in orchestrator.events(execution_id)]
    assert [event.sequence for event in events] == list(range(1, len(events) + 1))
    assert events[-1].result == {"n99": {"ok": True}}
    assert {event.execution_id for event in events} == {execution_id}
