"""The shipped streaming example runs end to end on real files into SQLite."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from engine import AdvancedPluginOrchestrator, PluginWorkflow, WorkflowExecutionStatus

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def test_streaming_example(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, tmp_path: Path
) -> None:
    data = tmp_path / "stream-data"
    data.mkdir()
    for part in range(3):
        lines = [
            json.dumps({"id": part * 1000 + i, "name": f"item{i}", "amount": i % 25, "price": 2.5})
            for i in range(1000)
        ]
        (data / f"part-{part}.jsonl").write_text("\n".join(lines) + "\n")
    definition = PluginWorkflow.from_json(
        json.loads((EXAMPLES / "streaming_pipeline.json").read_text())
    )
    definition.workflow_id = unique("streaming-example")
    definition.node("data_source").configuration["path"] = str(data)  # type: ignore[union-attr]
    database = tmp_path / "stream-output.db"
    definition.node("output").configuration["url"] = f"sqlite:///{database}"  # type: ignore[union-attr]
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    context = await orchestrator.wait_for_completion(execution_id, 120)
    assert context.status is WorkflowExecutionStatus.Completed, context.error_messages
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT id, amount, total, label FROM orders ORDER BY id"
        ).fetchall()
    expected = [part * 1000 + i for part in range(3) for i in range(1000) if i % 25 >= 10]
    assert [row[0] for row in rows] == expected
    assert rows[0][2] == rows[0][1] * 2.5
    assert rows[0][3] == "ITEM10"
    assert context.execution_data["checkpoint"]["file"] == "part-2.jsonl"
    assert context.node_states["output"]["counters"]["items_out"] == len(expected)
