"""The admission workflow of a definition: the slots of its ``max_concurrent_executions``.

One per capped definition and task queue (id :func:`~engine.runtime.contracts.admission_entity_id`),
started by the first request (signal-with-start or update-with-start: no one needs to create it).
The bookkeeping is :class:`engine.runtime.admission.Admissions`; this module is the Temporal glue:

* ``request`` signal: a client queues a start (overflow ``queue``), before it starts the
  execution, so the queue keeps the order of the start requests;
* ``request_slot`` update: a client asks before starting (overflow ``reject``: the validator
  refuses over the limit and writes nothing), or an execution claims its slot when it runs
  (:mod:`activities.admission`); answers ``granted``, ``queued`` or ``rejected``;
* ``release`` signal: an execution ended (completed, failed, cancelled, or cancelled while
  queued); its slot goes to the head of the queue, told by the ``admission_granted`` signal;
* while anyone waits (or an entry waits for its execution to appear) it checks every few
  seconds, with an activity, which of the executions it counts have closed or never started,
  and frees what they hold: a terminated execution cannot release;
* it continues as new, carrying its state, when its history grows past
  ``AdmissionState.max_history`` events (or Temporal suggests it).

Anyone who can reach Temporal can send these messages; requests are bounded (ids of this
definition's executions, a queue of at most :data:`~engine.runtime.admission.MAX_QUEUED`).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from engine.base.errors import PluginErrorCode
    from engine.runtime.admission import (
        CHECK_INTERVAL,
        MAX_CHECK_INTERVAL,
        Admissions,
        AdmissionState,
        Liveness,
        Verdict,
    )
    from engine.runtime.contracts import (
        ADMISSION_GRANTED_SIGNAL,
        ADMISSION_RELEASE_SIGNAL,
        ADMISSION_REQUEST_SIGNAL,
        ADMISSION_REQUEST_UPDATE,
        ADMISSION_WORKFLOW,
        CHECK_EXECUTIONS_ACTIVITY,
        ExecutionCheck,
        ExecutionLiveness,
        SlotAnswer,
        SlotRelease,
        SlotRequest,
    )
    from engine.temporal.telemetry import ENTITY_DIVISION, NAMESPACE_DIVISION

_CHECK_TIMEOUT = timedelta(seconds=15)
_CHECK_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1))
_ID_CHARS = 1000


@workflow.defn(name=ADMISSION_WORKFLOW)
class PluginAdmission:
    """Holds the slots and the queue of one definition's executions."""

    @workflow.init
    def __init__(self, state: AdmissionState) -> None:
        self._admissions = Admissions(state)
        self._changed = True
        self._interval = CHECK_INTERVAL

    @workflow.run
    async def run(self, state: AdmissionState) -> None:
        if workflow.info().typed_search_attributes.get(NAMESPACE_DIVISION) != ENTITY_DIVISION:
            workflow.upsert_search_attributes([NAMESPACE_DIVISION.value_set(ENTITY_DIVISION)])
        while not self._should_continue_as_new():
            await self._notify()
            waiting = self._admissions.needs_check()
            changed = await self._wait(self._interval if waiting else None)
            if changed:
                self._interval = CHECK_INTERVAL
            elif waiting:
                await self._check()
                self._interval = min(self._interval * 2, MAX_CHECK_INTERVAL)
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._notify()
        workflow.continue_as_new(self._admissions.state)

    async def _wait(self, timeout: float | None) -> bool:
        """Wait for a request or a release (True), or ``timeout`` seconds (False)."""
        try:
            await workflow.wait_condition(
                lambda: self._changed or self._should_continue_as_new(),
                timeout=timedelta(seconds=timeout) if timeout is not None else None,
            )
        except TimeoutError:
            return False
        changed, self._changed = self._changed, False
        return changed

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        too_long = info.get_current_history_length() > self._admissions.state.max_history
        return too_long or info.is_continue_as_new_suggested()

    async def _notify(self) -> None:
        """Tell the holders that run, and do not know yet, that they may go on; one that
        cannot be told (it ended) gives its slot back."""
        while ids := self._admissions.to_notify():
            for execution_id in ids:
                self._admissions.notified(execution_id)
                handle = workflow.get_external_workflow_handle(execution_id)
                try:
                    await handle.signal(ADMISSION_GRANTED_SIGNAL)
                except Exception:  # it has ended: nothing will release its slot
                    workflow.logger.info("%s has ended; its slot is free", execution_id)
                    self._admissions.release(execution_id)

    async def _check(self) -> None:
        """Free what closed executions (terminated ones) and never-started ones hold."""
        ids = self._admissions.to_check()
        if not ids:
            return
        try:
            liveness: ExecutionLiveness = await workflow.execute_activity(
                CHECK_EXECUTIONS_ACTIVITY,
                ExecutionCheck(execution_ids=ids),
                result_type=ExecutionLiveness,
                start_to_close_timeout=_CHECK_TIMEOUT,
                retry_policy=_CHECK_RETRY,
                summary=f"check the {len(ids)} executions counted",
            )
        except ActivityError as err:
            workflow.logger.warning("could not check executions: %s", err.cause or err)
            return
        found = {key: Liveness(value) for key, value in liveness.found.items()}
        dropped = self._admissions.reap(found, workflow.now())
        if dropped:
            workflow.logger.info("freed the slots of %d ended executions", len(dropped))
            self._changed = True

    # -- messages --------------------------------------------------------------------------

    @workflow.signal(name=ADMISSION_REQUEST_SIGNAL)
    def request(self, request: SlotRequest) -> None:
        """A client queues a start (the answer is given to the execution when it claims)."""
        if problem := self._request_problem(request):
            workflow.logger.warning("ignored a slot request: %s", problem)
            return
        self._take(request)

    @workflow.update(name=ADMISSION_REQUEST_UPDATE)
    def request_slot(self, request: SlotRequest) -> SlotAnswer:
        """A slot for an execution: granted, queued (with its place) or rejected (a claim
        that finds no room under ``reject``: the execution fails saying so)."""
        verdict = self._take(request)
        if verdict is Verdict.rejected:
            reason = self._admissions.refusal(request.execution_id, request.limit, request.overflow)
            return SlotAnswer(verdict=verdict.value, reason=reason or "no slot")
        return SlotAnswer(
            verdict=verdict.value, position=self._admissions.position(request.execution_id)
        )

    @request_slot.validator
    def _validate_request_slot(self, request: SlotRequest) -> None:
        if problem := self._request_problem(request):
            raise ApplicationError(
                problem, type=PluginErrorCode.InvalidInput.value, non_retryable=True
            )
        if request.claim:
            return  # the execution runs already: it learns the verdict from the answer
        reason = self._admissions.refusal(request.execution_id, request.limit, request.overflow)
        if reason is not None:
            raise ApplicationError(
                reason, type=PluginErrorCode.ConcurrencyLimitReached.value, non_retryable=True
            )

    @workflow.signal(name=ADMISSION_RELEASE_SIGNAL)
    def release(self, release: SlotRelease) -> None:
        """An execution ended, or was cancelled while queued."""
        if self._admissions.release(release.execution_id[:_ID_CHARS]):
            self._changed = True

    @workflow.query
    def admission(self) -> AdmissionState:
        """Slots and queue as of now."""
        return self._admissions.state

    def _take(self, request: SlotRequest) -> Verdict:
        verdict = self._admissions.request(
            request.execution_id,
            limit=request.limit,
            overflow=request.overflow,
            now=workflow.now(),
            claim=request.claim,
        )
        self._changed = True
        return verdict

    def _request_problem(self, request: SlotRequest) -> str | None:
        prefix = f"{self._admissions.state.workflow_id}/run-"
        execution_id = request.execution_id
        if not execution_id.startswith(prefix) or len(execution_id) > len(prefix) + 32:
            return f"{execution_id[:200]!r} is not an execution of this definition"
        return None
