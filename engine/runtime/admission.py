"""Slots and queue of a definition's ``max_concurrent_executions``: pure bookkeeping.

The admission workflow of a definition (:mod:`engine.temporal.admission`) holds one
:class:`AdmissionState` and changes it only through :class:`Admissions`; everything here is
deterministic and free of Temporal, so it is tested without a server.

* An execution takes a slot (it becomes a *holder*) when one is free and nobody queues before
  it; otherwise it queues (overflow ``queue``) or is refused (overflow ``reject``).
* The queue is first in, first out, in the order the admission workflow received the
  requests (a client asks before it starts the execution, so that is the order of the
  start requests).
* A request comes first from the client; the execution *claims* it once it runs. Until then
  the entry is unclaimed: a client that died between its request and its start leaves an
  entry whose execution never appears, dropped by :meth:`Admissions.reap` after
  :data:`START_WINDOW` seconds.
* An execution gives its slot (or its place in the queue) back when it ends. One that cannot
  (terminated, or it never started) is found by the periodic check of :meth:`Admissions.reap`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Overflow = Literal["queue", "reject"]

# Entries a queue may hold: what the admission workflow carries across continue-as-new stays
# far below Temporal's payload limit (about 200 bytes an entry).
MAX_QUEUED = 2000
# Tickets of recent admissions kept (see AdmissionState.admitted).
MAX_ADMITTED_KEPT = 100
# Seconds an entry may wait for its execution to appear before it is dropped (the client died
# between asking and starting it).
START_WINDOW = 60.0
# Seconds between two checks of the executions an admission workflow counts, while someone
# waits (doubling while nothing changes, up to the maximum).
CHECK_INTERVAL = 2.0
MAX_CHECK_INTERVAL = 30.0


class Liveness(StrEnum):
    """What a check found of an execution."""

    running = "running"
    closed = "closed"
    missing = "missing"


class AdmissionEntry(BaseModel):
    """One execution holding a slot or waiting for one."""

    model_config = ConfigDict(extra="ignore")

    execution_id: str
    ticket: int
    requested_at: datetime
    claimed: bool = False  # the execution runs and asked for its slot itself
    notified: bool = False  # a holder: the execution was told (or knows) it may run


class AdmissionState(BaseModel):
    """What an admission workflow holds and carries across continue-as-new."""

    model_config = ConfigDict(extra="ignore")

    workflow_id: str
    limit: int = 1
    overflow: Overflow = "queue"
    holders: list[AdmissionEntry] = Field(default_factory=list)
    queue: list[AdmissionEntry] = Field(default_factory=list)
    next_ticket: int = 1
    granted: int = 0  # slots given in all
    # Tickets of the latest admissions, in the order they got their slots (a ticket is the
    # place of the request: FIFO means these only grow).
    admitted: list[int] = Field(default_factory=list)
    # History length past which the admission workflow continues as new (Temporal may
    # suggest it earlier).
    max_history: int = Field(2000, ge=50, le=20000)
    # Seconds an entry may wait for its execution to appear (see START_WINDOW).
    start_window: float = Field(START_WINDOW, ge=1, le=3600)


class Verdict(StrEnum):
    """The answer to a request for a slot."""

    granted = "granted"
    queued = "queued"
    rejected = "rejected"


class Admissions:
    """The operations on one :class:`AdmissionState` (which it changes in place)."""

    def __init__(self, state: AdmissionState) -> None:
        self.state = state

    # -- reading -----------------------------------------------------------------------------

    def find(self, execution_id: str) -> tuple[AdmissionEntry, bool] | None:
        """The entry of an execution and whether it holds a slot, or None."""
        for entry in self.state.holders:
            if entry.execution_id == execution_id:
                return entry, True
        for entry in self.state.queue:
            if entry.execution_id == execution_id:
                return entry, False
        return None

    def position(self, execution_id: str) -> int:
        """1-based place in the queue, 0 for a holder or an unknown execution."""
        for index, entry in enumerate(self.state.queue):
            if entry.execution_id == execution_id:
                return index + 1
        return 0

    def refusal(self, execution_id: str, limit: int, overflow: Overflow) -> str | None:
        """Why a new request would be refused now (nothing changes), or None."""
        if self.find(execution_id) is not None:
            return None  # a repeated request gets the answer it got
        state = self.state
        if overflow == "reject" and (len(state.holders) >= limit or state.queue):
            return (
                f"workflow '{state.workflow_id}' already runs {len(state.holders)} executions "
                f"(max_concurrent_executions is {limit}, concurrency_overflow is 'reject')"
            )
        if overflow == "queue" and len(state.queue) >= MAX_QUEUED and len(state.holders) >= limit:
            return (
                f"workflow '{state.workflow_id}' has {len(state.queue)} executions queued, "
                f"the most a queue may hold ({MAX_QUEUED})"
            )
        return None

    # -- changing ----------------------------------------------------------------------------

    def request(
        self,
        execution_id: str,
        *,
        limit: int,
        overflow: Overflow,
        now: datetime,
        claim: bool = False,
    ) -> Verdict:
        """A slot for ``execution_id``: take it, queue, or refuse (the state is unchanged
        then). Repeated requests are answered as the first one was. ``limit`` and
        ``overflow`` are the definition's as the requester read them; the latest request's
        apply from then on (a lower limit lets holders finish). ``claim``: the execution
        itself asks (it runs)."""
        state = self.state
        state.limit, state.overflow = limit, overflow
        found = self.find(execution_id)
        if found is None:
            if self.refusal(execution_id, limit, overflow) is not None:
                return Verdict.rejected
            entry = AdmissionEntry(
                execution_id=execution_id, ticket=state.next_ticket, requested_at=now
            )
            state.next_ticket += 1
            state.queue.append(entry)
            self.promote()
            found = self.find(execution_id)
            assert found is not None
        entry, holding = found
        if claim:
            entry.claimed = True
            if holding:
                entry.notified = True  # the answer tells it
        return Verdict.granted if holding else Verdict.queued

    def release(self, execution_id: str) -> bool:
        """The execution ended (or left the queue): free what it held. False if it held
        nothing."""
        state = self.state
        before = len(state.holders) + len(state.queue)
        state.holders = [e for e in state.holders if e.execution_id != execution_id]
        state.queue = [e for e in state.queue if e.execution_id != execution_id]
        if len(state.holders) + len(state.queue) == before:
            return False
        self.promote()
        return True

    def promote(self) -> None:
        """Give free slots to the head of the queue, in order."""
        state = self.state
        while state.queue and len(state.holders) < state.limit:
            entry = state.queue.pop(0)
            entry.notified = False
            state.holders.append(entry)
            state.granted += 1
            state.admitted = [*state.admitted[-(MAX_ADMITTED_KEPT - 1) :], entry.ticket]

    def to_notify(self) -> list[str]:
        """Holders that run and have not been told they may go on."""
        return [e.execution_id for e in self.state.holders if e.claimed and not e.notified]

    def notified(self, execution_id: str) -> None:
        found = self.find(execution_id)
        if found is not None:
            found[0].notified = True

    # -- finding the ones that cannot release ------------------------------------------------

    def needs_check(self) -> bool:
        """Is anyone waiting for what a dead execution may hold? (someone queues, the slots
        are all taken, or an entry waits for its execution to appear)"""
        state = self.state
        every = state.holders + state.queue
        return (
            bool(state.queue)
            or len(state.holders) >= state.limit
            or any(not e.claimed for e in every)
        )

    def to_check(self) -> list[str]:
        """The executions a check describes: every holder and every queued entry."""
        return [e.execution_id for e in self.state.holders + self.state.queue]

    def reap(self, found: dict[str, Liveness], now: datetime) -> list[str]:
        """Drop the entries of executions found closed, and of those still missing
        ``start_window`` seconds after their request; returns their ids. Entries not in
        ``found`` are kept (they came after the check began)."""
        window = timedelta(seconds=self.state.start_window)
        dropped: list[str] = []
        for entry in self.state.holders + self.state.queue:
            seen = found.get(entry.execution_id)
            if seen is Liveness.closed or (
                seen is Liveness.missing and (entry.claimed or now - entry.requested_at > window)
            ):
                dropped.append(entry.execution_id)
        for execution_id in dropped:
            self.release(execution_id)
        return dropped
