"""The spec's Quick Start, as written: three nodes with no configuration at all, joined by
DataFlow connections, registered and executed (plugin_orchestrator_v2.md, "Quick Start").

Only the language changes: C++ becomes Python through the synchronous facade, and
``register_workflow`` raises where the C++ returns an error. The spec runs it Streaming; it
runs Sequential too. With nothing configured, ``data_source`` emits one empty record,
``data_processor`` passes it through and ``data_sink`` writes it to
``<data dir>/outputs/<execution>/output.jsonl`` and says where.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import engine.sync
from engine.hosting.devserver import DevServer

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("mode", ["Streaming", "Sequential"])
def test_the_spec_quick_start_runs_as_written(
    dev_server: DevServer, task_queue: str, unique, mode: str
) -> None:
    workflow_id = unique("advanced_pipeline")
    orchestrator = engine.sync.AdvancedPluginOrchestrator(
        dev_server.address, task_queue=task_queue, start_worker=True
    )
    try:
        # --- the spec's Quick Start (C++ to Python; the workflow id made unique) ---
        workflow = engine.sync.PluginWorkflow()
        workflow.workflow_id = workflow_id
        workflow.name = "Advanced Data Pipeline"
        workflow.execution_mode = getattr(engine.sync.WorkflowExecutionMode, mode)

        input_node = engine.sync.WorkflowNode()
        input_node.node_id = "input"
        input_node.plugin_id = "data_source"
        input_node.node_type = engine.sync.WorkflowNodeType.Source

        process_node = engine.sync.WorkflowNode()
        process_node.node_id = "process"
        process_node.plugin_id = "data_processor"
        process_node.node_type = engine.sync.WorkflowNodeType.Processor

        output_node = engine.sync.WorkflowNode()
        output_node.node_id = "output"
        output_node.plugin_id = "data_sink"
        output_node.node_type = engine.sync.WorkflowNodeType.Sink

        workflow.nodes = [input_node, process_node, output_node]

        conn1 = engine.sync.WorkflowConnection()
        conn1.source_node = "input"
        conn1.target_node = "process"
        conn1.connection_type = engine.sync.ConnectionType.DataFlow

        conn2 = engine.sync.WorkflowConnection()
        conn2.source_node = "process"
        conn2.target_node = "output"
        conn2.connection_type = engine.sync.ConnectionType.DataFlow

        workflow.connections = [conn1, conn2]

        orchestrator.register_workflow(workflow)
        execution_id = orchestrator.execute_workflow(workflow_id)
        # --- end of the spec's Quick Start ---
        context = orchestrator.wait_for_completion(execution_id, timeout=60)
    finally:
        orchestrator.close()

    assert context.status is engine.sync.WorkflowExecutionStatus.Completed, context.error_messages
    written = _sink_result(context, mode)
    expected = _outputs() / execution_id.replace("/", "_") / "output.jsonl"
    assert written["path"] == str(expected)
    assert written["count"] == 1
    assert Path(written["path"]).read_text() == "{}\n"


def _sink_result(context: Any, mode: str) -> dict[str, Any]:
    """What the sink returned: the run's results (batch modes) or its last batch (Streaming)."""
    if mode == "Streaming":
        result = context.node_states["output"].get("result")
    else:
        result = context.execution_data["results"]["output"]
    assert isinstance(result, dict), json.dumps(context.node_states, default=str)
    return result


def _outputs() -> Path:
    # The session's data directory (tests/conftest.py sets it), as the worker resolves it.
    return Path(os.path.realpath(os.environ["ORCHESTRATOR_DATA_DIR"])) / "outputs"
