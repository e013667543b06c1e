"""The synchronous facade: the spec's Python example, prefix swapped, runs as written."""

from __future__ import annotations

import time

import pytest

import engine.sync
from engine.hosting.devserver import DevServer


def test_spec_python_example(dev_server: DevServer, task_queue: str, unique) -> None:
    workflow_id = unique("python_pipeline")
    # --- the spec's example, with qtforge.orchestration. replaced by engine.sync. ---
    orchestrator = engine.sync.AdvancedPluginOrchestrator(
        dev_server.address, task_queue=task_queue, start_worker=True
    )
    try:
        workflow = engine.sync.PluginWorkflow()
        workflow.workflow_id = workflow_id
        workflow.execution_mode = engine.sync.WorkflowExecutionMode.Streaming

        source_node = engine.sync.WorkflowNode()
        source_node.node_id = "source"
        source_node.plugin_id = "data_source"
        source_node.node_type = engine.sync.WorkflowNodeType.Source

        workflow.nodes.append(source_node)

        orchestrator.register_workflow(workflow)
        execution_id = orchestrator.execute_workflow(workflow_id)
        # --- end of the spec's example: data_source streams its (here: no) records. ---
        streamed = orchestrator.wait_for_completion(execution_id, timeout=30)

        # With records, the same streaming workflow moves them to its result counters; a
        # batch version of it returns them.
        source_node.configuration = {"records": [{"id": 1}, {"id": 2}]}
        orchestrator.update_workflow(workflow)
        counted = orchestrator.wait_for_completion(
            orchestrator.execute_workflow(workflow_id), timeout=30
        )
        workflow.execution_mode = engine.sync.WorkflowExecutionMode.Sequential
        orchestrator.update_workflow(workflow)
        execution_id = orchestrator.execute_workflow(workflow_id)
        events = [event.type.value for event in orchestrator.events(execution_id)]
        context = orchestrator.wait_for_completion(execution_id, timeout=30)
    finally:
        orchestrator.close()
    assert streamed.status is engine.sync.WorkflowExecutionStatus.Completed
    assert counted.status is engine.sync.WorkflowExecutionStatus.Completed
    assert counted.node_states["source"]["counters"]["items_out"] == 2
    assert events[0] == "workflow_started"
    assert events[-1] == "workflow_completed"
    assert context.status is engine.sync.WorkflowExecutionStatus.Completed
    assert context.execution_data["results"]["source"]["count"] == 2
    assert context.execution_data["workflow_version"] == 3


def test_errors_and_listing(dev_server: DevServer, task_queue: str, unique) -> None:
    with engine.sync.AdvancedPluginOrchestrator(
        dev_server.address, task_queue=task_queue, start_worker=True
    ) as orchestrator:
        with pytest.raises(engine.sync.PluginError) as info:
            orchestrator.get_workflow(unique("missing"))
        assert info.value.code is engine.sync.PluginErrorCode.WorkflowNotFound
        workflow = engine.sync.PluginWorkflow(workflow_id=unique("listed"))
        orchestrator.register_workflow(workflow)
        assert workflow.workflow_id in orchestrator.get_registered_workflows()
        assert orchestrator.get_active_executions() == []


def test_schedules(dev_server: DevServer, task_queue: str, unique) -> None:
    with engine.sync.AdvancedPluginOrchestrator(
        dev_server.address, task_queue=task_queue, start_worker=True
    ) as orchestrator:
        workflow_id = unique("scheduled")
        node = engine.sync.WorkflowNode(
            node_id="source", plugin_id="data_source", configuration={"records": [{"id": 1}]}
        )
        orchestrator.register_workflow(
            engine.sync.PluginWorkflow(
                workflow_id=workflow_id,
                execution_mode=engine.sync.WorkflowExecutionMode.Sequential,
                nodes=[node],
            )
        )
        schedule_id = orchestrator.create_schedule(
            workflow_id, cron="@daily", input_data={"n": 1}, paused=True
        )
        orchestrator.trigger_schedule(schedule_id)
        deadline = time.monotonic() + 20
        while not (details := orchestrator.describe_schedule(schedule_id)).recent_runs:
            assert time.monotonic() < deadline, details
            time.sleep(0.1)
        context = orchestrator.wait_for_completion(details.recent_runs[0].execution_id, 20)
        orchestrator.delete_schedule(schedule_id)
    assert details.paused
    assert details.cron == "@daily"
    assert context.status is engine.sync.WorkflowExecutionStatus.Completed
    assert context.execution_data["results"]["source"]["count"] == 1
