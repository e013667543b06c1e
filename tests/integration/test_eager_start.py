"""Eager starts: a run started from a process whose worker serves its task queue gets its
first workflow task in the start call's response (no trip through the task queue).

The history shows it: an eagerly started run's first WorkflowTaskStarted is written with the
start itself (the event right after WorkflowTaskScheduled, in the same transaction: task ids
follow one another) and carries no ``history_size_bytes`` (the server fills that in when a
poller takes the task). A run started otherwise has its first task taken by a poll."""

from __future__ import annotations

import asyncio

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

import engine.sync
from engine import AdvancedPluginOrchestrator, WorkflowExecutionStatus
from engine.hosting import local_workers
from engine.hosting.connection import connect
from engine.hosting.devserver import DevServer
from tests.helpers.builders import chain


async def _started_eagerly(client: Client, execution_id: str) -> bool:
    history = await client.get_workflow_handle(execution_id).fetch_history()
    started, scheduled, task_started = history.events[:3]
    assert started.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
    assert scheduled.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED
    assert task_started.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
    attributes = task_started.workflow_task_started_event_attributes
    in_the_start = task_started.task_id == started.task_id + 2
    return in_the_start and attributes.history_size_bytes == 0


async def test_runs_started_beside_their_worker_start_eagerly_others_do_not(
    orchestrator: AdvancedPluginOrchestrator, worker: object, dev_server: DevServer, unique
) -> None:
    definition = chain(unique("eager"), 2)
    await orchestrator.register_workflow(definition)
    assert local_workers.serves(orchestrator.client, orchestrator.task_queue)
    here = await orchestrator.execute_workflow(definition.workflow_id)
    # Another connection of this process: no worker of it serves the queue.
    elsewhere = AdvancedPluginOrchestrator(
        await connect(dev_server.address), task_queue=orchestrator.task_queue
    )
    assert not local_workers.serves(elsewhere.client, elsewhere.task_queue)
    assert not local_workers.serves(orchestrator.client, "another-queue")
    there = await elsewhere.execute_workflow(definition.workflow_id)
    for execution_id in (here, there):
        context = await orchestrator.wait_for_completion(execution_id, 60)
        assert context.status is WorkflowExecutionStatus.Completed, context.error_messages
    assert await _started_eagerly(orchestrator.client, here)
    assert not await _started_eagerly(orchestrator.client, there)


def test_the_sync_facade_hosting_its_worker_starts_eagerly(
    dev_server: DevServer, task_queue: str, unique
) -> None:
    definition = chain(unique("eager_sync"), 2, "data_processor")
    with engine.sync.AdvancedPluginOrchestrator(
        dev_server.address, task_queue=task_queue, start_worker=True
    ) as orchestrator:
        orchestrator.register_workflow(definition)
        execution_id = orchestrator.execute_workflow(
            definition.workflow_id, {"records": [{"id": 1}]}
        )
        context = orchestrator.wait_for_completion(execution_id, timeout=60)
        assert context.status is WorkflowExecutionStatus.Completed, context.error_messages

    async def check() -> bool:
        return await _started_eagerly(await connect(dev_server.address), execution_id)

    assert asyncio.run(check())
    # The facade's worker has stopped: nothing of this process serves the queue any more.
    assert not local_workers._running
