"""``max_concurrent_executions`` on the dev server: the cap holds under concurrent starts from
separate clients, queued starts keep their order and survive a worker restart, ``reject``
refuses before anything starts, and every ending (cancel, failure, terminate) frees a slot."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from asyncio.subprocess import Process
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from engine.base.errors import PluginError, PluginErrorCode
from engine.client.orchestrator import AdvancedPluginOrchestrator
from engine.hosting.devserver import DevServer
from engine.language.models import PluginWorkflow, WorkflowExecutionStatus
from engine.runtime.admission import AdmissionState
from engine.runtime.contracts import (
    ADMISSION_REQUEST_SIGNAL,
    ADMISSION_WORKFLOW,
    SlotRequest,
    admission_entity_id,
)
from engine.temporal.admission_requests import request_slot
from tests.helpers.builders import node, workflow
from tests.helpers.processes import ROOT, WorkerProcess
from tests.helpers.waiting import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")
Status = WorkflowExecutionStatus


def capped(
    workflow_id: str, limit: int, overflow: str = "queue", plugin: str = "sleep", **config: Any
) -> PluginWorkflow:
    return workflow(
        workflow_id,
        [node("work", plugin, **config)],
        max_concurrent_executions=limit,
        concurrency_overflow=overflow,
    )


def most_at_once(intervals: list[tuple[datetime, datetime]]) -> int:
    """The largest number of intervals that overlap (an end before a start at the same time)."""
    points = [(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals]
    current = peak = 0
    for _, step in sorted(points, key=lambda p: (p[0], p[1])):
        current += step
        peak = max(peak, current)
    return peak


_STARTER = """
import asyncio, sys
from engine.client.orchestrator import AdvancedPluginOrchestrator
from engine.hosting.connection import connect

async def main(address, task_queue, workflow_id):
    orch = AdvancedPluginOrchestrator(await connect(address), task_queue=task_queue)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    ids = await asyncio.gather(*(orch.execute_workflow(workflow_id) for _ in range(5)))
    print(" ".join(ids), flush=True)

asyncio.run(main(*sys.argv[1:]))
"""


async def _starter(address: str, task_queue: str, workflow_id: str) -> Process:
    """A process that starts five executions at once when told "go" on its stdin."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _STARTER,
        address,
        task_queue,
        workflow_id,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    assert (await process.stdout.readline()).strip() == b"ready"
    return process


async def admission_state(client: Client, workflow_id: str, task_queue: str) -> AdmissionState:
    handle = client.get_workflow_handle(admission_entity_id(workflow_id, task_queue))
    state: AdmissionState = await handle.query("admission", result_type=AdmissionState)
    return state


async def statuses(orch: AdvancedPluginOrchestrator, ids: list[str]) -> list[Status]:
    contexts = await asyncio.gather(*(orch.get_execution_status(i) for i in ids))
    return [context.status for context in contexts]


@pytest.fixture(name="cached_worker")
def fixture_cached_worker(
    dev_server: DevServer, task_queue: str, tmp_path: Path
) -> Iterator[WorkerProcess]:
    """A worker process with a workflow cache. Twenty clients reading a definition at once
    send twenty queries to its registry entity: a worker without a cache (the ``worker``
    fixture's) replays the entity for each, and the SDK's core drops queries buffered when
    it evicts the run after each task ("leftover buffered tasks when evicting run"),
    so some time out; that holds without a limit too and is not what these tests are about."""
    worker = WorkerProcess(dev_server.address, task_queue, tmp_path, max_cached_workflows=100)
    yield worker
    worker.terminate()


@pytest.mark.usefixtures("cached_worker")
async def test_twenty_concurrent_starts_run_two_at_a_time_in_order(
    orchestrator: AdvancedPluginOrchestrator,
    dev_server: DevServer,
    task_queue: str,
    unique: Callable[[str], str],
) -> None:
    workflow_id = unique("capped")
    await orchestrator.register_workflow(capped(workflow_id, 2, seconds=0.3))
    # Four processes of their own, five starts each, all at once.
    starters = [await _starter(dev_server.address, task_queue, workflow_id) for _ in range(4)]
    for process in starters:
        assert process.stdin is not None
        process.stdin.write(b"go\n")
        await process.stdin.drain()
    ids = []
    for process in starters:
        out, err = await process.communicate()
        assert process.returncode == 0, err.decode()[-2000:]
        ids += out.decode().split()
    assert len(ids) == 20
    # Queued executions show as such, in status reads and listings.
    admission = await eventually(
        lambda: admission_state(orchestrator.client, workflow_id, task_queue),
        lambda a: len(a.queue) >= 5,
        interval=0.5,
    )
    last = admission.queue[-1].execution_id
    # (Pending until a worker has picked the execution up, then queued.)
    await eventually(
        lambda: orchestrator.get_execution_status(last),
        lambda c: c.status is Status.Queued,
        interval=0.5,
    )
    queued = await orchestrator.list_executions(workflow_id, status="queued", limit=50)
    assert last in [row.execution_id for row in queued]
    assert all(row.status == "queued" for row in queued)

    finals = [await orchestrator.wait_for_completion(i, timeout=60) for i in ids]
    assert [f.status for f in finals] == [Status.Completed] * 20
    intervals = []
    for final in finals:
        state = final.node_states["work"]
        intervals.append(
            (
                datetime.fromisoformat(state["started_at"]),
                datetime.fromisoformat(state["completed_at"]),
            )
        )
    assert most_at_once(intervals) == 2
    admission = await admission_state(orchestrator.client, workflow_id, task_queue)
    assert admission.granted == 20
    assert admission.admitted == sorted(admission.admitted)  # first come, first served
    assert admission.holders == []
    assert admission.queue == []


@pytest.mark.usefixtures("cached_worker")
async def test_reject_refuses_starts_over_the_cap(
    orchestrator: AdvancedPluginOrchestrator, task_queue: str, unique: Callable[[str], str]
) -> None:
    workflow_id = unique("rejecting")
    await orchestrator.register_workflow(capped(workflow_id, 2, "reject", seconds=30))
    results = await asyncio.gather(
        *(orchestrator.execute_workflow(workflow_id) for _ in range(20)), return_exceptions=True
    )
    started = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, PluginError)]
    assert len(started) == 2, results
    assert len(refused) == 18
    assert all(e.code is PluginErrorCode.ConcurrencyLimitReached for e in refused)
    assert "max_concurrent_executions is 2" in refused[0].message
    # Nothing else was started.
    active = await orchestrator.list_executions(workflow_id, limit=50)
    assert sorted(row.execution_id for row in active) == sorted(started)
    # A cancelled one frees its slot: the next start is admitted.
    await orchestrator.cancel_execution(started[0])
    await orchestrator.wait_for_completion(started[0], timeout=30)
    third = await eventually(
        lambda: _try_start(orchestrator, workflow_id), lambda r: r is not None, timeout=20
    )
    for execution_id in (started[1], third):
        assert execution_id is not None
        await orchestrator.cancel_execution(execution_id)
        await orchestrator.wait_for_completion(execution_id, timeout=30)


async def _try_start(orch: AdvancedPluginOrchestrator, workflow_id: str) -> str | None:
    try:
        return await orch.execute_workflow(workflow_id)
    except PluginError as exc:
        if exc.code is not PluginErrorCode.ConcurrencyLimitReached:
            raise
        return None


@pytest.mark.usefixtures("worker")
async def test_cancel_and_failure_free_slots(
    orchestrator: AdvancedPluginOrchestrator, task_queue: str, unique: Callable[[str], str]
) -> None:
    workflow_id = unique("one-at-a-time")
    await orchestrator.register_workflow(capped(workflow_id, 1, seconds=30))
    first = await orchestrator.execute_workflow(workflow_id)
    second = await orchestrator.execute_workflow(workflow_id)
    third = await orchestrator.execute_workflow(workflow_id)
    await eventually(
        lambda: statuses(orchestrator, [first, second, third]),
        lambda s: s == [Status.Running, Status.Queued, Status.Queued],
    )
    # Cancelling a queued execution takes it out of the queue; nothing of it ran.
    await orchestrator.cancel_execution(second)
    cancelled = await orchestrator.wait_for_completion(second, timeout=30)
    assert cancelled.status is Status.Cancelled
    assert cancelled.node_states["work"]["status"] == "cancelled"
    await eventually(
        lambda: admission_state(orchestrator.client, workflow_id, task_queue),
        lambda a: [e.execution_id for e in a.queue] == [third],
    )
    # Cancelling the running one gives its slot to the next in the queue.
    await orchestrator.cancel_execution(first)
    await eventually(lambda: statuses(orchestrator, [third]), lambda s: s == [Status.Running])
    await orchestrator.cancel_execution(third)
    await orchestrator.wait_for_completion(third, timeout=30)

    # A failed execution frees its slot too.
    failing = unique("failing")
    await orchestrator.register_workflow(
        capped(failing, 1, plugin="fail", retry={"max_attempts": 1})
    )
    runs = [await orchestrator.execute_workflow(failing) for _ in range(3)]
    finals = [await orchestrator.wait_for_completion(r, timeout=60) for r in runs]
    assert [f.status for f in finals] == [Status.Failed] * 3


@pytest.mark.usefixtures("worker")
async def test_terminated_holder_slot_is_reclaimed(
    orchestrator: AdvancedPluginOrchestrator, task_queue: str, unique: Callable[[str], str]
) -> None:
    workflow_id = unique("terminated")
    await orchestrator.register_workflow(capped(workflow_id, 1, seconds=30))
    holder = await orchestrator.execute_workflow(workflow_id)
    waiting = await orchestrator.execute_workflow(workflow_id)
    await eventually(
        lambda: statuses(orchestrator, [holder, waiting]),
        lambda s: s == [Status.Running, Status.Queued],
    )
    # Terminated, the holder cannot release: the admission workflow finds it closed.
    await orchestrator.client.get_workflow_handle(holder).terminate("test")
    await eventually(
        lambda: statuses(orchestrator, [waiting]), lambda s: s == [Status.Running], timeout=20
    )
    await orchestrator.cancel_execution(waiting)
    await orchestrator.wait_for_completion(waiting, timeout=30)


async def test_queued_executions_survive_a_worker_restart(
    orchestrator: AdvancedPluginOrchestrator,
    dev_server: DevServer,
    task_queue: str,
    unique: Callable[[str], str],
    tmp_path: Path,
) -> None:
    workflow_id = unique("restart")
    # A node lost with the killed worker is retried after its heartbeat timeout.
    definition = capped(workflow_id, 1, seconds=1.0)
    definition.global_configuration["heartbeat_timeout"] = 2
    await orchestrator.register_workflow(definition)
    worker = WorkerProcess(dev_server.address, task_queue, tmp_path)
    try:
        ids = [await orchestrator.execute_workflow(workflow_id, {"i": i}) for i in range(4)]
        # Killed once the queued ones wait for their grant (they have claimed their slots).
        await eventually(
            lambda: admission_state(orchestrator.client, workflow_id, task_queue),
            lambda a: len(a.queue) >= 2 and all(e.claimed for e in a.queue),
        )
        worker.kill()
        killed = time.monotonic()
        worker = WorkerProcess(dev_server.address, task_queue, tmp_path)
        finals = [await orchestrator.wait_for_completion(i, timeout=60) for i in ids]
        print(f"all completed {time.monotonic() - killed:.1f}s after the kill")
        assert [f.status for f in finals] == [Status.Completed] * 4
        admission = await admission_state(orchestrator.client, workflow_id, task_queue)
        assert admission.admitted == sorted(admission.admitted)
    finally:
        worker.terminate()


@pytest.mark.usefixtures("worker")
async def test_admission_continues_as_new_with_its_slots_and_queue(
    orchestrator: AdvancedPluginOrchestrator, task_queue: str, unique: Callable[[str], str]
) -> None:
    workflow_id = unique("long-lived")
    await orchestrator.register_workflow(capped(workflow_id, 1, seconds=0.1))
    # The admission workflow, started first with a short history budget.
    await orchestrator.client.start_workflow(
        ADMISSION_WORKFLOW,
        AdmissionState(workflow_id=workflow_id, max_history=50),
        id=admission_entity_id(workflow_id, task_queue),
        task_queue=task_queue,
    )
    ids = [await orchestrator.execute_workflow(workflow_id) for _ in range(6)]
    finals = [await orchestrator.wait_for_completion(i, timeout=60) for i in ids]
    assert [f.status for f in finals] == [Status.Completed] * 6
    handle = orchestrator.client.get_workflow_handle(admission_entity_id(workflow_id, task_queue))
    description = await handle.describe()
    first_run = description.raw_description.workflow_execution_info.first_run_id
    assert first_run != description.run_id  # it continued as new at least once
    admission = await admission_state(orchestrator.client, workflow_id, task_queue)
    assert admission.granted == 6
    assert admission.admitted == sorted(admission.admitted)
    assert admission.holders == []


@pytest.mark.usefixtures("worker")
async def test_a_slot_reserved_by_a_client_that_never_started_expires(
    orchestrator: AdvancedPluginOrchestrator, task_queue: str, unique: Callable[[str], str]
) -> None:
    """Under ``reject`` a client takes the slot before it starts the execution: if it dies in
    between, the slot is freed once the execution has not appeared for ``start_window``."""
    workflow_id = unique("abandoned")
    await orchestrator.register_workflow(capped(workflow_id, 1, "reject", seconds=0.1))
    await orchestrator.client.start_workflow(
        ADMISSION_WORKFLOW,
        AdmissionState(workflow_id=workflow_id, start_window=2),
        id=admission_entity_id(workflow_id, task_queue),
        task_queue=task_queue,
    )
    # What execute_workflow does first, by a client that dies before starting the run.
    request = SlotRequest(
        workflow_id=workflow_id,
        execution_id=f"{workflow_id}/run-{'0' * 16}",
        limit=1,
        overflow="reject",
    )
    answer = await request_slot(orchestrator.client, task_queue, request)
    assert answer.verdict == "granted"
    with pytest.raises(PluginError) as refused:
        await orchestrator.execute_workflow(workflow_id)
    assert refused.value.code is PluginErrorCode.ConcurrencyLimitReached
    started = await eventually(
        lambda: _try_start(orchestrator, workflow_id), lambda r: r is not None, interval=0.5
    )
    assert started is not None
    final = await orchestrator.wait_for_completion(started, timeout=30)
    assert final.status is Status.Completed


async def test_hostile_requests_to_the_admission_workflow_change_nothing(
    orchestrator: AdvancedPluginOrchestrator,
    client: Client,
    worker: object,
    task_queue: str,
    unique: Callable[[str], str],
) -> None:
    """Anyone who can reach Temporal can signal or update the admission workflow: requests
    for executions of other definitions, or ids longer than an execution's, are refused (the
    update) or dropped (the signal), and the slots stay as they were."""
    workflow_id = unique("guarded")
    await orchestrator.register_workflow(capped(workflow_id, 1, seconds=30.0))
    holder = await orchestrator.execute_workflow(workflow_id)
    await eventually(
        lambda: admission_state(client, workflow_id, task_queue),
        lambda state: [e.execution_id for e in state.holders] == [holder],
    )
    handle = client.get_workflow_handle(admission_entity_id(workflow_id, task_queue))
    strangers = [
        "other-definition/run-0123456789abcdef",
        f"{workflow_id}/run-{'f' * 33}",
        f"{workflow_id}-extra/run-0123456789abcdef",
    ]
    for stranger in strangers:
        request = SlotRequest(workflow_id=workflow_id, execution_id=stranger, limit=1000)
        await handle.signal(ADMISSION_REQUEST_SIGNAL, request)
        with pytest.raises(PluginError) as refused:
            await request_slot(client, task_queue, request)
        assert "is not an execution of this definition" in refused.value.message
    state = await admission_state(client, workflow_id, task_queue)
    assert [e.execution_id for e in state.holders] == [holder]
    assert state.queue == []
    assert state.limit == 1  # no stranger's request raised it
    await orchestrator.cancel_execution(holder)
