"""Activities of ``max_concurrent_executions``: an execution claims its slot, and a definition's
admission workflow checks which of the executions it counts still run.

Both talk to Temporal with the worker's own client; the workflows only record their answers.
"""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from engine.runtime.admission import Liveness
from engine.runtime.contracts import (
    CHECK_EXECUTIONS_ACTIVITY,
    CLAIM_SLOT_ACTIVITY,
    ExecutionCheck,
    ExecutionLiveness,
    SlotAnswer,
    SlotRequest,
)
from engine.temporal.admission_requests import request_slot

# Describes at once while checking (a check counts at most limit + queue executions).
_PARALLEL_DESCRIBES = 20


class AdmissionActivities:
    """Bound to the worker's client."""

    def __init__(self, client: Client) -> None:
        self._client = client

    @activity.defn(name=CLAIM_SLOT_ACTIVITY)
    async def claim_execution_slot(self, request: SlotRequest) -> SlotAnswer:
        """The running execution asks for the slot its starter requested (or a new one)."""
        return await request_slot(self._client, activity.info().task_queue, request)

    @activity.defn(name=CHECK_EXECUTIONS_ACTIVITY)
    async def check_admitted_executions(self, check: ExecutionCheck) -> ExecutionLiveness:
        """Whether each execution runs, has closed, or does not exist."""
        gate = asyncio.Semaphore(_PARALLEL_DESCRIBES)

        async def look(execution_id: str) -> tuple[str, Liveness]:
            async with gate:
                try:
                    description = await self._client.get_workflow_handle(execution_id).describe()
                except RPCError as exc:
                    if exc.status is RPCStatusCode.NOT_FOUND:
                        return execution_id, Liveness.missing
                    raise
            running = description.status is WorkflowExecutionStatus.RUNNING
            return execution_id, Liveness.running if running else Liveness.closed

        found = await asyncio.gather(*(look(i) for i in check.execution_ids))
        return ExecutionLiveness(found={key: value.value for key, value in found})
