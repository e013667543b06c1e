"""A deliberately changed interpreter: nodes get other activity ids. Replaying recorded
histories with it must fail, which proves the replay tests would catch such a change."""

from __future__ import annotations

from dataclasses import replace

from temporalio import workflow

from engine.runtime.contracts import EXECUTION_WORKFLOW, ExecutionInput, ExecutionOutcome
from engine.runtime.interpreter import NodeCall, NodeSuccess
from engine.temporal.workflow import PluginWorkflowExecution


@workflow.defn(name=EXECUTION_WORKFLOW)
class ChangedExecution(PluginWorkflowExecution):
    @workflow.run
    async def run(self, params: ExecutionInput) -> ExecutionOutcome:
        return await super().run(params)

    async def _run_node(self, call: NodeCall) -> NodeSuccess:
        return await super()._run_node(replace(call, node_id=f"changed-{call.node_id}"))
