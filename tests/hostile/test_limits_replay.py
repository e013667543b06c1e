"""The determinism contract of the limits: tightening them never changes a run in flight.

Two places run the rules inside workflow code, where a replay must decide as the original
run did: condition evaluation (the cost meter, behind ``workflow.patched``) and the registry
entity's modification handler (only the rules that never tighten). Each test records a
history as an earlier release would have, then replays it with today's code.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.workflow import NondeterminismError

import engine.language.validation
import engine.temporal.registry
import engine.temporal.workflow
from engine import AdvancedPluginOrchestrator, WorkflowExecutionStatus
from engine.language.conditions import MAX_CONDITION_COST
from engine.language.modification import apply_change
from engine.runtime.contracts import definition_entity_id
from engine.temporal.workflow import CONDITION_METER_PATCH
from tests.helpers.builders import chain, edge, node, workflow
from tests.replay.replay_all import replayer

# Costs about twice MAX_CONDITION_COST: refused by the meter, fine without it.
EXPENSIVE = "items.all(i, i >= 0)"
ITEMS = list(range(MAX_CONDITION_COST // 10))


def has_marker(history: WorkflowHistory, patch: str) -> bool:
    return any(
        event.HasField("marker_recorded_event_attributes")
        and patch in str(event.marker_recorded_event_attributes)
        for event in history.events
    )


async def test_a_run_from_before_the_meter_replays_without_it(
    orchestrator: AdvancedPluginOrchestrator,
    client: Client,
    worker: object,
    unique: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    definition = workflow(
        unique("premeter"),
        [node("a", emit={"items": ITEMS}), node("b")],
        [edge("a", "b", condition=EXPENSIVE)],
    )
    await orchestrator.register_workflow(definition)

    # A worker of the release before the meter: no marker, every condition unmetered.
    monkeypatch.setattr(engine.temporal.workflow, "_meter_conditions", lambda: False)
    old_run = await orchestrator.execute_workflow(definition.workflow_id)
    final = await orchestrator.wait_for_completion(old_run, 60)
    assert final.status is WorkflowExecutionStatus.Completed, final.error_messages
    assert final.node_states["b"]["status"] == "completed"
    history = await client.get_workflow_handle(old_run).fetch_history()
    assert not has_marker(history, CONDITION_METER_PATCH)
    monkeypatch.undo()

    # Today's code replays it without the meter, so the expensive condition is still true.
    await replayer().replay_workflow(history)
    # Metering it regardless would change the run's decisions: the replay would fail.
    monkeypatch.setattr(engine.temporal.workflow, "_meter_conditions", lambda: True)
    with pytest.raises(NondeterminismError):
        await replayer().replay_workflow(history)
    monkeypatch.undo()

    # A new run marks its history and is metered: the same condition now fails the run.
    new_run = await orchestrator.execute_workflow(definition.workflow_id)
    final = await orchestrator.wait_for_completion(new_run, 60)
    assert final.status is WorkflowExecutionStatus.Failed
    assert any("is too expensive" in error for error in final.error_messages)
    history = await client.get_workflow_handle(new_run).fetch_history()
    assert has_marker(history, CONDITION_METER_PATCH)
    await replayer().replay_workflow(history)


async def test_modifications_accepted_under_earlier_limits_replay(
    orchestrator: AdvancedPluginOrchestrator,
    client: Client,
    worker: object,
    unique: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    definition = chain(unique("tightened"), 3)
    await orchestrator.register_workflow(definition)
    await orchestrator.add_node_to_workflow(definition.workflow_id, node("extra"))
    entity = definition_entity_id(definition.workflow_id, orchestrator.task_queue)
    history = await client.get_workflow_handle(entity).fetch_history()

    # A later release allows three nodes only: the four-node modification still replays.
    monkeypatch.setattr(engine.language.validation, "MAX_NODES", 3)
    await replayer().replay_workflow(history)
    # Had the handler applied the registration rules, the replay would fail.
    monkeypatch.setattr(
        engine.temporal.registry,
        "apply_change",
        lambda current, change, strict=False: apply_change(current, change),
    )
    with pytest.raises(RuntimeError, match="4 nodes; the limit is 3"):
        await replayer().replay_workflow(history)
