"""Record the histories the replay tests replay.

    python -m tests.replay.record

Runs representative executions and registry changes on a fresh dev server and writes each
history to ``tests/replay/histories/<name>.json``. Run it when you add a scenario; never to
"fix" a failing replay test: a replay failure means the change would break runs in flight
(put the change behind ``workflow.patched`` instead).
"""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
from pathlib import Path

from temporalio.client import Client

from engine import AdvancedPluginOrchestrator, PluginWorkflow
from engine.connection import connect
from engine.contracts import definition_entity_id
from engine.devserver import DevServer, free_port
from engine.worker import create_worker
from tests.helpers.builders import chain, edge, node, workflow
from tests.helpers.plugins import test_registry
from tests.helpers.waiting import eventually

HISTORIES = Path(__file__).parent / "histories"
TASK_QUEUE = "replay-recording"


def _scenarios() -> dict[str, PluginWorkflow]:
    fan = [node(f"leaf{i}") for i in range(8)]
    return {
        "sequential_chain": chain("sequential_chain", 4, mode="sequential"),
        "conditional_diamond": workflow(
            "conditional_diamond",
            [
                node("check", emit={"file_valid": True}),
                node("valid"),
                node("invalid"),
                node("join"),
            ],
            [
                edge("check", "valid", condition="file_valid == true"),
                edge("check", "invalid", condition="file_valid == false"),
                edge("valid", "join", target_port="v"),
                edge("invalid", "join", target_port="i"),
            ],
            mode="conditional",
        ),
        "parallel_fan_out": workflow(
            "parallel_fan_out",
            [node("root"), *fan, node("join")],
            [edge("root", f"leaf{i}") for i in range(8)]
            + [edge(f"leaf{i}", "join", target_port=f"p{i}") for i in range(8)],
            max_parallelism=3,
        ),
        "failure_after_retries": workflow(
            "failure_after_retries",
            [node("ok"), node("bad", "fail"), node("never")],
            [edge("ok", "bad"), edge("bad", "never")],
            retry={"max_attempts": 2, "initial_interval": 0.1},
        ),
        "retry_then_success": workflow(
            "retry_then_success",
            [node("flaky", "flaky", succeed_on=2, retry={"initial_interval": 0.1})],
        ),
        "bad_output": workflow("bad_output", [node("n", "bad_output")]),
        "paused_and_resumed": workflow(
            "paused_and_resumed",
            [node("a", "sleep", seconds=1), node("b")],
            [edge("a", "b")],
        ),
        "cancelled": workflow("cancelled", [node("a", "sleep", seconds=30, heartbeat_timeout=2)]),
    }


async def _record(client: Client, handle_id: str, name: str) -> None:
    history = await client.get_workflow_handle(handle_id).fetch_history()
    data = _scrub(json.loads(history.to_json()))
    (HISTORIES / f"{name}.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"recorded {name}: {len(history.events)} events")


def _scrub(value: object) -> object:
    """Drop what would leak the recording machine (stack traces with paths, host names);
    replay depends on neither."""
    if isinstance(value, dict):
        return {
            key: "" if key == "stackTrace" else "recorder" if key == "identity" else _scrub(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_scrub(item) for item in value]
    if isinstance(value, str) and socket.gethostname() in value:
        return "recorder"  # e.g. the sticky task queue name "pid@host-uuid"
    return value


async def _until_running(orch: AdvancedPluginOrchestrator, execution_id: str, node_id: str) -> None:
    await eventually(
        lambda: orch.get_node_status(execution_id, node_id), lambda s: s["status"] == "running"
    )


async def main() -> None:
    HISTORIES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        server = DevServer(Path(tmp) / "server", port=free_port(), ui_port=0).start()
        try:
            client = await connect(server.address)
            orch = AdvancedPluginOrchestrator(client, task_queue=TASK_QUEUE)
            async with create_worker(
                client, task_queue=TASK_QUEUE, plugins=test_registry(Path(tmp))
            ):
                for name, definition in _scenarios().items():
                    await orch.register_workflow(definition)
                    execution_id = await orch.execute_workflow(name, {"scenario": name})
                    if name == "paused_and_resumed":
                        await _until_running(orch, execution_id, "a")
                        await orch.pause_execution(execution_id)
                        await asyncio.sleep(1.5)
                        await orch.resume_execution(execution_id)
                    if name == "cancelled":
                        await _until_running(orch, execution_id, "a")
                        await orch.cancel_execution(execution_id)
                    await orch.wait_for_completion(execution_id, 60)
                    await _record(client, execution_id, name)
                # A registry entity through its life: register, modify, reject, unregister.
                registry_id = "registry_entity"
                await orch.register_workflow(chain(registry_id, 2))
                await orch.add_node_to_workflow(registry_id, node("n2"))
                await orch.add_connection_to_workflow(registry_id, edge("n1", "n2"))
                try:
                    await orch.add_connection_to_workflow(registry_id, edge("n2", "n0"))
                except Exception as exc:
                    print(f"rejected as expected: {exc}")
                await orch.remove_node_from_workflow(registry_id, "n0")
                await orch.unregister_workflow(registry_id)
                handle = client.get_workflow_handle(definition_entity_id(registry_id, TASK_QUEUE))
                await handle.result()
                await _record(client, definition_entity_id(registry_id, TASK_QUEUE), registry_id)
        finally:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
