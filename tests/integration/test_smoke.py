from __future__ import annotations

from engine import AdvancedPluginOrchestrator, WorkflowExecutionStatus
from tests.helpers.builders import chain


async def test_chain_runs(orchestrator: AdvancedPluginOrchestrator, worker, unique) -> None:
    wf = chain(unique("smoke"), 3)
    await orchestrator.register_workflow(wf)
    execution_id = await orchestrator.execute_workflow(wf.workflow_id, {"x": 1})
    ctx = await orchestrator.wait_for_completion(execution_id, timeout=30)
    assert ctx.status is WorkflowExecutionStatus.Completed, ctx.error_messages
    assert ctx.execution_data["results"]["n2"]["node"] == "n2"
    events = [e async for e in orchestrator.events(execution_id)]
    print([e.type.value for e in events])
    assert events[-1].type.value == "workflow_completed"
