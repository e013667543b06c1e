"""Large outputs go to the blob store and travel as references; Temporal never sees them."""

from __future__ import annotations

import hashlib
from pathlib import Path

from engine import AdvancedPluginOrchestrator, WorkflowExecutionStatus
from engine.temporal.blobs import LocalBlobStore, is_ref
from tests.helpers.builders import edge, node, workflow


async def test_a_50_mb_output_flows_to_the_next_node(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, blob_store: Path
) -> None:
    size = 50_000_000
    definition = workflow(
        unique("big"),
        [node("make", "big_output", size=size), node("check", "measure")],
        [edge("make", "check", target_port="made")],
    )
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    context = await orchestrator.wait_for_completion(execution_id, 300)
    assert context.status is WorkflowExecutionStatus.Completed, context.error_messages
    measured = context.execution_data["results"]["check"]["made.blob"]
    assert measured == {"length": size, "sha256": hashlib.sha256(b"x" * size).hexdigest()}
    ref = context.node_states["make"]["result"]["blob"]
    assert is_ref(ref)
    assert ref["bytes"] == size + 2  # the JSON string with its quotes
    assert ref["preview"].startswith('"xxxx')
    assert await orchestrator.read_blob(ref) == "x" * size
    history = await orchestrator.client.get_workflow_handle(execution_id).fetch_history()
    assert len(history.to_json()) < 500_000  # the 50 MB never entered Temporal

    # Once the execution has ended, its blobs can be collected.
    removed = await orchestrator.collect_blobs(older_than=0)
    assert execution_id in removed
    assert not any(owner == execution_id for owner, _, _ in LocalBlobStore(blob_store).executions())
