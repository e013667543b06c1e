"""With encryption on, payloads the engine cannot open never steer a run, and never wedge it.

Someone who can reach Temporal but holds no key sends a plaintext (or a forged "encrypted")
signal, update or query to a run of encrypting workers: the signal is dropped (the SDK logs
it), the update and the query are refused, the run goes on and legitimate encrypted traffic
still works. A worker that lacks the key a run was written with names that key (issue 11,
item 13) and leaves the run for a worker that has it.
"""

from __future__ import annotations

import base64
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import RawValue

from engine import (
    AdvancedPluginOrchestrator,
    ConnectionType,
    PluginWorkflow,
    WorkflowConnection,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
    WorkflowNode,
    WorkflowNodeType,
)
from engine.hosting.codec import ENCODING, KEY_ID_METADATA, KEYS_FILE_VARIABLE, KEYS_VARIABLE
from engine.hosting.connection import connect
from engine.hosting.devserver import DevServer
from engine.hosting.worker import create_worker
from engine.runtime.contracts import (
    EVENTS_SIGNAL,
    EXECUTION_WORKFLOW,
    SUBMIT_EVENTS_UPDATE,
    ExecutionInput,
)
from plugins import PluginRegistry
from tests.helpers.builders import edge, node, workflow
from tests.helpers.waiting import eventually

pytestmark = pytest.mark.integration

K1 = "k1:" + base64.b64encode(bytes(range(32))).decode()
Status = WorkflowExecutionStatus


@pytest.fixture(name="keys")
def fixture_keys(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Encryption on (key k1) for clients and workers connected from here on."""
    monkeypatch.delenv(KEYS_FILE_VARIABLE, raising=False)
    monkeypatch.setenv(KEYS_VARIABLE, K1)
    return monkeypatch


@contextlib.asynccontextmanager
async def encrypting_engine(
    server: DevServer, plugins: PluginRegistry, task_queue: str
) -> AsyncIterator[AdvancedPluginOrchestrator]:
    client = await connect(server.address)
    worker = create_worker(
        client, task_queue=task_queue, plugins=plugins, max_cached_workflows=0, graceful_shutdown=5
    )
    async with worker:
        yield AdvancedPluginOrchestrator(client, task_queue=task_queue, query_timeout=5.0)


def inbox_definition(workflow_id: str) -> PluginWorkflow:
    """EventDriven: events from clients (a source that produces none) -> echo."""
    inbox = WorkflowNode(
        node_id="inbox",
        plugin_id="numbers",
        node_type=WorkflowNodeType.Source,
        configuration={"count": 0},
    )
    return PluginWorkflow(
        workflow_id=workflow_id,
        execution_mode=WorkflowExecutionMode.EventDriven,
        nodes=[inbox, node("check")],
        connections=[
            WorkflowConnection(
                source_node="inbox", target_node="check", connection_type=ConnectionType.Event
            )
        ],
    )


def forged_payloads() -> dict[str, Payload]:
    """What someone without the keys can send, besides plain JSON."""
    events = b'{"events":[{"event_id":"forged","payload":{"n":1}}]}'
    return {
        "sealed with a key nobody has": Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: b"stolen"}, data=events
        ),
        "claiming key k1 without it": Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: b"k1"}, data=bytes(64)
        ),
    }


async def task_failures(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """Messages of the run's failed workflow tasks (a wedged run keeps adding them)."""
    failures = []
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            failure = event.workflow_task_failed_event_attributes.failure
            chain = [failure.message]
            while failure.HasField("cause"):
                failure = failure.cause
                chain.append(failure.message)
            failures.append(": ".join(chain))
    return failures


async def test_plaintext_and_forged_signals_are_dropped_and_the_run_goes_on(
    dev_server: DevServer,
    registry: PluginRegistry,
    task_queue: str,
    unique: Any,
    keys: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with encrypting_engine(dev_server, registry, task_queue) as orch:
        definition = inbox_definition(unique("inbox"))
        await orch.register_workflow(definition)
        execution_id = await orch.execute_workflow(definition.workflow_id)

        outsider = await Client.connect(dev_server.address)  # no codec, no keys
        handle = outsider.get_workflow_handle(execution_id)
        await handle.signal(EVENTS_SIGNAL, {"events": [{"event_id": "plain", "payload": {"n": 1}}]})
        for forged in forged_payloads().values():
            await handle.signal(EVENTS_SIGNAL, RawValue(forged))
        await orch.send_event(execution_id, "number", {"n": 2}, event_id="legit")

        context = await eventually(
            lambda: orch.get_execution_status(execution_id),
            lambda c: c.execution_data["events_processed"] >= 1,
        )
        assert context.status is Status.Running
        assert context.execution_data["events_received"] == 1  # only the legitimate one
        assert context.node_states["check"]["result"]["inputs"] == {"n": 2}
        assert await task_failures(orch.client.get_workflow_handle(execution_id)) == []
        assert "dropping the signal" in caplog.text
        assert "refused a plaintext payload (encoding 'json/plain')" in caplog.text
        assert "encrypted with key 'stolen', which this process does not have" in caplog.text
        assert "encrypted with key 'k1' does not decrypt" in caplog.text

        await orch.cancel_execution(execution_id)
        assert (await orch.wait_for_completion(execution_id, 30)).status is Status.Cancelled


async def test_plaintext_updates_and_queries_are_refused_and_the_run_completes(
    dev_server: DevServer,
    registry: PluginRegistry,
    task_queue: str,
    unique: Any,
    keys: pytest.MonkeyPatch,
) -> None:
    definition = workflow(
        unique("approval"),
        [node("ask", "approval", prompt="ship it?"), node("ship"), node("stop")],
        [
            edge("ask", "ship", condition="approved == true"),
            edge("ask", "stop", condition="approved == false"),
        ],
    )
    async with encrypting_engine(dev_server, registry, task_queue) as orch:
        await orch.register_workflow(definition)
        execution_id = await orch.execute_workflow(definition.workflow_id)
        await eventually(
            lambda: orch.get_execution_status(execution_id),
            lambda c: c.execution_data.get("awaiting_approval") == ["ask"],
        )
        outsider = (await Client.connect(dev_server.address)).get_workflow_handle(execution_id)
        with pytest.raises(WorkflowUpdateFailedError):
            await outsider.execute_update("decide", {"node_id": "ask", "approved": False})
        with pytest.raises(WorkflowUpdateFailedError):
            await outsider.execute_update(SUBMIT_EVENTS_UPDATE, {"events": []})
        with pytest.raises(WorkflowQueryFailedError):
            await outsider.query("events", 0)

        await orch.approve_node(execution_id, "ask", True, by="ada")
        context = await orch.wait_for_completion(execution_id, 30)
        assert context.status is Status.Completed
        assert context.node_states["ship"]["status"] == "completed"
        assert context.node_states["stop"]["status"] == "skipped"
        assert await task_failures(orch.client.get_workflow_handle(execution_id)) == []


async def test_a_worker_without_the_key_names_it_and_a_worker_with_it_finishes_the_run(
    dev_server: DevServer,
    registry: PluginRegistry,
    task_queue: str,
    unique: Any,
    keys: pytest.MonkeyPatch,
) -> None:
    """Issue 11, item 13: the keyless worker used to fail with a bare ``KeyError``."""
    client = await connect(dev_server.address)  # k1
    definition = workflow(unique("keyed"), [node("a", "echo", emit={"answer": 42})])
    execution_id = f"{definition.workflow_id}/{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow(
        EXECUTION_WORKFLOW,
        ExecutionInput(workflow=definition, input_data={}),
        id=execution_id,
        task_queue=task_queue,
    )

    keys.delenv(KEYS_VARIABLE)
    keyless = await connect(dev_server.address)
    # The bare Temporal worker: the engine's would also publish a plaintext plugin catalog on
    # this queue, which the encrypting worker below would then (rightly) refuse to read.
    bare = create_worker(keyless, task_queue=task_queue, plugins=registry, graceful_shutdown=1)
    async with bare.worker:
        failures = await eventually(lambda: task_failures(handle), bool)
    assert "payload is encrypted with key 'k1', which this process does not have" in failures[0]
    assert KEYS_VARIABLE in failures[0]
    assert "KeyError" not in failures[0]

    keys.setenv(KEYS_VARIABLE, K1)
    async with encrypting_engine(dev_server, registry, task_queue) as orch:
        context = await orch.wait_for_completion(execution_id, 60)
    assert context.status is Status.Completed
    assert context.execution_data["results"]["a"]["answer"] == 42
