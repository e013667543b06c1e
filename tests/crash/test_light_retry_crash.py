"""A worker killed while a light node waits out its retry backoff (a durable timer, patch
light-node-retries): the next worker fires the timer and runs the next attempt; the failed
attempt, recorded when its workflow task completed, does not run again."""

from __future__ import annotations

from pathlib import Path

from temporalio.api.enums.v1 import EventType

from engine import AdvancedPluginOrchestrator, WorkflowExecutionStatus
from engine.hosting.connection import connect
from engine.hosting.devserver import DevServer
from tests.helpers.builders import node, workflow
from tests.helpers.histories import count_events
from tests.helpers.plugins import read_count
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import eventually


async def test_worker_killed_during_a_light_nodes_backoff(
    dev_server: DevServer, task_queue: str, unique, tmp_path: Path
) -> None:
    retry = {"initial_interval": 3, "max_attempts": 3}
    definition = workflow(
        unique("light-backoff-crash"),
        [node("flaky", "fail_times", times=1, execution="local", retry=retry)],
    )
    client = await connect(dev_server.address)
    orchestrator = AdvancedPluginOrchestrator(client, task_queue=task_queue)
    first = WorkerProcess(dev_server.address, task_queue, tmp_path)
    try:
        await orchestrator.register_workflow(definition)
        execution_id = await orchestrator.execute_workflow(definition.workflow_id)
        handle = client.get_workflow_handle(execution_id)

        async def timers() -> int:
            history = await handle.fetch_history()
            return count_events(history, EventType.EVENT_TYPE_TIMER_STARTED)

        # The first attempt failed and its workflow task completed: the backoff timer runs.
        await eventually(timers, lambda started: started == 1)
    finally:
        first.kill()
    assert read_count(tmp_path, "flaky") == 1
    second = WorkerProcess(dev_server.address, task_queue, tmp_path)
    try:
        context = await orchestrator.wait_for_completion(execution_id, timeout=60)
    finally:
        assert second.terminate() == 0
    assert context.status is WorkflowExecutionStatus.Completed, context.error_messages
    assert context.node_states["flaky"]["attempts"] == 2
    assert context.execution_data["results"]["flaky"] == {"calls": 2}
    assert read_count(tmp_path, "flaky") == 2  # the failed attempt did not run again
    assert "Fatal Python error" not in second.stderr_text()
