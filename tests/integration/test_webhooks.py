"""Webhooks on the dev server: signed deliveries start executions (once per key) or send
events; wrong, missing and stale signatures, oversized bodies, floods and unknown hooks are
refused before anything starts; the secret never reaches Temporal; the CLI manages hooks."""

from __future__ import annotations

import asyncio
import json
import stat
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from temporalio.client import Client

from engine import (
    AdvancedPluginOrchestrator,
    ConnectionType,
    PluginError,
    PluginErrorCode,
    PluginWorkflow,
    WorkflowConnection,
    WorkflowExecutionMode,
    WorkflowNode,
    WorkflowNodeType,
)
from engine.client import executions
from engine.client.hook_signing import SIGNATURE_HEADER, sign
from engine.client.hooks import delivery_suffix
from engine.runtime.contracts import execution_id_for
from engine.studio import StudioServer, create_app
from engine.studio.app import create_hooks_app
from tests.helpers.builders import chain, node
from tests.helpers.waiting import eventually

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(name="hooked")
def fixture_hooked(client: Client, task_queue: str, tmp_path: Path) -> AdvancedPluginOrchestrator:
    """An orchestrator whose hooks live in the test's own file."""
    return AdvancedPluginOrchestrator(
        client, task_queue=task_queue, query_timeout=5.0, hooks_file=tmp_path / "hooks.json"
    )


@pytest_asyncio.fixture(name="http", loop_scope="session")
async def fixture_http(hooked: AdvancedPluginOrchestrator) -> AsyncIterator[httpx.AsyncClient]:
    """The studio's app (API and receiver) in-process."""
    transport = httpx.ASGITransport(app=create_app(hooked))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as http:
        yield http


def _signed(
    secret: str,
    body: dict[str, Any] | bytes,
    *,
    key: str | None = None,
    at: int | None = None,
) -> tuple[bytes, dict[str, str]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"content-type": "application/json", SIGNATURE_HEADER: sign(secret, raw, at)}
    if key is not None:
        headers["idempotency-key"] = key
    return raw, headers


async def _post(
    http: httpx.AsyncClient, hook_id: str, raw: bytes, headers: dict[str, str]
) -> httpx.Response:
    return await http.post(f"/hooks/{hook_id}", content=raw, headers=headers)


async def _not_started(orch: AdvancedPluginOrchestrator, execution_id: str) -> None:
    with pytest.raises(PluginError) as info:
        await orch.get_execution_status(execution_id)
    assert info.value.code is PluginErrorCode.ExecutionNotFound


async def test_signed_delivery_starts_once_per_key_and_keeps_the_secret_out_of_temporal(
    hooked: AdvancedPluginOrchestrator, http: httpx.AsyncClient, worker: object, unique
) -> None:
    definition = chain(unique("hooked"), 2)
    await hooked.register_workflow(definition)
    hook_id = unique("deploy")
    secret = await hooked.create_hook(hook_id, definition.workflow_id)
    assert secret.startswith("whsec_")

    body = {"ref": "refs/heads/main", "marker": "payload-marker-4711"}
    raw, headers = _signed(secret, body, key="delivery-1")
    first = await _post(http, hook_id, raw, headers)
    assert first.status_code == 202, first.text
    answer = first.json()
    execution_id = answer["execution_id"]
    assert answer["duplicate"] is False
    assert execution_id == execution_id_for(
        definition.workflow_id, delivery_suffix(hook_id, "delivery-1")
    )
    context = await hooked.wait_for_completion(execution_id, 30)
    assert context.status.value == "completed"
    started = await executions.start_input(hooked.client.get_workflow_handle(execution_id))
    assert started.input_data == body

    # The same key again, signed anew and with another body: the same execution, nothing new.
    raw, headers = _signed(secret, {"other": True}, key="delivery-1")
    again = await _post(http, hook_id, raw, headers)
    assert again.status_code == 200, again.text
    assert again.json() == {**answer, "duplicate": True}

    # Without a key, the signed message is the key: a byte-for-byte replay is a repeat too.
    raw, headers = _signed(secret, {"n": 1})
    keyless = await _post(http, hook_id, raw, headers)
    assert keyless.status_code == 202, keyless.text
    replay = await _post(http, hook_id, raw, headers)
    assert replay.status_code == 200
    assert replay.json()["execution_id"] == keyless.json()["execution_id"]

    # Concurrent deliveries of one key: one starts, the others find it.
    raw, headers = _signed(secret, {"n": 2}, key="burst")
    burst = await asyncio.gather(*(_post(http, hook_id, raw, headers) for _ in range(5)))
    assert sorted(r.status_code for r in burst) == [200, 200, 200, 200, 202], [
        r.text for r in burst
    ]
    assert len({r.json()["execution_id"] for r in burst}) == 1

    # The API's own keyed start (what two processes racing with one key meet): refused.
    with pytest.raises(PluginError) as info:
        await hooked.execute_workflow(
            definition.workflow_id, execution_key=delivery_suffix(hook_id, "burst")
        )
    assert info.value.code is PluginErrorCode.WorkflowAlreadyExists
    assert info.value.details["execution_id"] == burst[0].json()["execution_id"]

    # Three executions in all.
    expected = {execution_id, keyless.json()["execution_id"], burst[0].json()["execution_id"]}
    rows = await eventually(
        lambda: hooked.list_executions(definition.workflow_id),
        lambda rows: {row.execution_id for row in rows} >= expected,
    )
    assert {row.execution_id for row in rows} == expected

    # The secret is nowhere in what Temporal holds (history with input, memo and search
    # attributes), while the body is (the check can see payloads).
    history = await hooked.client.get_workflow_handle(execution_id).fetch_history()
    stored = b"".join(event.SerializeToString() for event in history.events)
    assert b"payload-marker-4711" in stored
    assert secret.encode() not in stored
    assert secret[len("whsec_") :].encode() not in stored
    description = await hooked.client.get_workflow_handle(execution_id).describe()
    assert secret not in json.dumps(await description.memo())
    # It is kept in a file only its owner can read.
    hooks_file = hooked.hook_store.path
    assert stat.S_IMODE(hooks_file.stat().st_mode) == 0o600
    assert secret in hooks_file.read_text()


async def test_wrong_missing_and_stale_signatures_start_nothing(
    hooked: AdvancedPluginOrchestrator, http: httpx.AsyncClient, worker: object, unique
) -> None:
    definition = chain(unique("guarded"), 1)
    await hooked.register_workflow(definition)
    hook_id = unique("guarded")
    secret = await hooked.create_hook(hook_id, definition.workflow_id)
    key = "k-1"
    body = {"x": 1}
    now = int(time.time())

    raw, good = _signed(secret, body, key=key)
    attempts = {
        "wrong secret": _signed("whsec_not-the-secret", body, key=key)[1],
        "missing": {"content-type": "application/json", "idempotency-key": key},
        "unreadable": {**good, SIGNATURE_HEADER: "sha256=abc"},
        "stale": _signed(secret, body, key=key, at=now - 3600)[1],
        "future": _signed(secret, body, key=key, at=now + 3600)[1],
        "other body": _signed(secret, {"x": 2}, key=key)[1],
    }
    for what, headers in attempts.items():
        response = await _post(http, hook_id, raw, headers)
        assert response.status_code == 401, (what, response.text)
        assert response.json()["code"] == "Unauthorized"
    await _not_started(
        hooked, execution_id_for(definition.workflow_id, delivery_suffix(hook_id, key))
    )


async def test_bounds_unknown_hooks_and_rotation(
    hooked: AdvancedPluginOrchestrator, http: httpx.AsyncClient, worker: object, unique
) -> None:
    definition = chain(unique("bounded"), 1)
    await hooked.register_workflow(definition)
    small = unique("small")
    secret = await hooked.create_hook(small, definition.workflow_id, max_body_bytes=1000)

    # Oversized: refused by its Content-Length before it is read.
    raw, headers = _signed(secret, {"blob": "x" * 2000}, key="big")
    response = await _post(http, small, raw, headers)
    assert response.status_code == 413
    await _not_started(
        hooked, execution_id_for(definition.workflow_id, delivery_suffix(small, "big"))
    )

    # Unknown hooks: one answer for all, naming none.
    for hook_id in ("no-such-hook", "bad%20id", small + "x"):
        response = await http.post(f"/hooks/{hook_id}", content=b"{}", headers=headers)
        assert response.status_code == 404
        assert response.json() == {"code": "NotFound", "message": "no such hook", "details": {}}

    # Rate: two a minute, the third waits (refused or not, every request counts).
    limited = unique("limited")
    limited_secret = await hooked.create_hook(limited, definition.workflow_id, rate_per_minute=2)
    raw, headers = _signed(limited_secret, {"n": 1}, key="r1")
    assert (await _post(http, limited, raw, headers)).status_code == 202
    assert (
        await _post(http, limited, b"{}", {"content-type": "application/json"})
    ).status_code == 401
    response = await _post(http, limited, raw, headers)
    assert response.status_code == 429
    assert 1 <= int(response.headers["retry-after"]) <= 30

    # Rotation with a grace: both secrets work; without one, the old is refused at once.
    new = await hooked.rotate_hook_secret(small, grace_seconds=600)
    for used, key in ((secret, "old"), (new, "new")):
        raw, headers = _signed(used, {"n": 2}, key=key)
        assert (await _post(http, small, raw, headers)).status_code == 202
    newest = await hooked.rotate_hook_secret(small)
    raw, headers = _signed(new, {"n": 3}, key="after")
    assert (await _post(http, small, raw, headers)).status_code == 401
    raw, headers = _signed(newest, {"n": 3}, key="after")
    assert (await _post(http, small, raw, headers)).status_code == 202


async def test_chunked_oversized_body_and_orchestrator_serve(
    hooked: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    definition = chain(unique("served"), 1)
    await hooked.register_workflow(definition)
    hook_id = unique("served")
    secret = await hooked.create_hook(hook_id, definition.workflow_id, max_body_bytes=4096)

    # Chunked (no Content-Length): refused on the bytes read, the rest never taken.
    produced = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal produced
        for _ in range(1024):  # up to 1 MiB
            produced += 1024
            yield b" " * 1024

    headers = {SIGNATURE_HEADER: sign(secret, b"{}"), "idempotency-key": "chunked"}
    transport = httpx.ASGITransport(app=create_hooks_app(hooked))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        response = await http.post(f"/hooks/{hook_id}", content=chunks(), headers=headers)
    assert response.status_code == 413
    assert produced <= 4096 + 2048, produced
    await _not_started(
        hooked, execution_id_for(definition.workflow_id, delivery_suffix(hook_id, "chunked"))
    )

    # `orchestrator serve`: the receiver alone, on a real socket, no token needed.
    server = StudioServer(hooked, "127.0.0.1", 0, hooks_only=True)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            raw, headers = _signed(secret, {"n": 1}, key="served")
            response = await http.post(f"/hooks/{hook_id}", content=raw, headers=headers)
            assert response.status_code == 202, response.text
            assert response.headers["x-frame-options"] == "DENY"  # the studio's guard
            assert (await http.post(f"/hooks/{hook_id}", content=raw)).status_code == 401
            assert (await http.get("/api/hooks")).status_code == 404
            assert (await http.get("/")).status_code == 404
    finally:
        await server.stop()


def _event_driven(workflow_id: str) -> PluginWorkflow:
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


async def test_event_hook_feeds_a_running_event_driven_execution(
    hooked: AdvancedPluginOrchestrator, http: httpx.AsyncClient, worker: object, unique
) -> None:
    definition = _event_driven(unique("listener"))
    await hooked.register_workflow(definition)
    execution_id = await hooked.execute_workflow(definition.workflow_id)
    hook_id = unique("feed")
    secret = await hooked.create_hook(
        hook_id, definition.workflow_id, "event", execution_id, event_type="push"
    )
    raw, headers = _signed(secret, {"n": 50}, key="evt-1")
    first = await _post(http, hook_id, raw, headers)
    assert first.status_code == 202, first.text
    assert first.json()["execution_id"] == execution_id
    event_id = first.json()["event_id"]
    repeat = await _post(http, hook_id, *_signed(secret, {"n": 50}, key="evt-1"))
    assert repeat.json()["event_id"] == event_id
    second = await _post(http, hook_id, *_signed(secret, {"n": 7}, key="evt-2"))
    assert second.status_code == 202
    context = await eventually(
        lambda: hooked.get_execution_status(execution_id),
        lambda c: c.execution_data.get("events_processed") == 2,
    )
    assert context.execution_data["events_received"] == 2  # the repeat was dropped
    await hooked.cancel_execution(execution_id)
    await hooked.wait_for_completion(execution_id, 30)

    # A hook cannot point at what is not a running EventDriven execution of its workflow.
    with pytest.raises(PluginError) as info:
        await hooked.create_hook(unique("late"), definition.workflow_id, "event", execution_id)
    assert info.value.code is PluginErrorCode.InvalidState


async def test_studio_routes_manage_hooks(
    hooked: AdvancedPluginOrchestrator, http: httpx.AsyncClient, worker: object, unique
) -> None:
    definition = chain(unique("managed"), 1)
    await hooked.register_workflow(definition)
    hook_id = unique("managed")
    created = await http.post(
        "/api/hooks", json={"hook_id": hook_id, "workflow_id": definition.workflow_id}
    )
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    assert created.headers["cache-control"] == "no-store"
    listed = await http.get("/api/hooks")
    assert [h["hook_id"] for h in listed.json()] == [hook_id]
    assert secret not in listed.text
    assert "secret" not in listed.json()[0]
    rotated = await http.post(f"/api/hooks/{hook_id}/rotate", json={})
    assert rotated.json()["secret"] not in (secret, None)
    duplicate = await http.post(
        "/api/hooks", json={"hook_id": hook_id, "workflow_id": definition.workflow_id}
    )
    assert duplicate.status_code == 409
    json_type = {"content-type": "application/json"}
    assert (await http.delete(f"/api/hooks/{hook_id}", headers=json_type)).status_code == 204
    assert (await http.delete(f"/api/hooks/{hook_id}", headers=json_type)).status_code == 404
    assert (await http.post(f"/hooks/{hook_id}", content=b"{}")).status_code == 404

    # A studio with a token: its API needs the token, its hooks only their signature.
    token = "t" * 32
    secret = await hooked.create_hook(hook_id, definition.workflow_id)
    transport = httpx.ASGITransport(app=create_app(hooked, token=token))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as guarded:
        assert (await guarded.get("/api/hooks")).status_code == 401
        raw, headers = _signed(secret, {"n": 1}, key="with-token")
        response = await _post(guarded, hook_id, raw, headers)
        assert response.status_code == 202, response.text


async def _cli(dev_server: Any, task_queue: str, data_dir: Path, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "engine.cli",
        "--address",
        dev_server.address,
        "--task-queue",
        task_queue,
        "--data-dir",
        str(data_dir),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


async def test_cli_create_list_serve_delete(
    hooked: AdvancedPluginOrchestrator, dev_server: Any, tmp_path: Path, worker: object, unique
) -> None:
    definition = chain(unique("cli-hooked"), 1)
    await hooked.register_workflow(definition)
    hook_id = unique("cli")
    queue = hooked.task_queue
    created = json.loads(
        await _cli(
            dev_server, queue, tmp_path, "hook", "create", hook_id, definition.workflow_id, "--json"
        )
    )
    assert created["hook_id"] == hook_id
    assert created["secret"].startswith("whsec_")
    # The CLI wrote the file the serving orchestrator reads (same data directory).
    assert [h.hook_id for h in await hooked.list_hooks()] == [hook_id]
    listed = await _cli(dev_server, queue, tmp_path, "hook", "list", "--json")
    assert [h["hook_id"] for h in json.loads(listed)] == [hook_id]
    assert created["secret"] not in listed

    # `orchestrator serve` serves the hooks of its data directory.
    serve = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "engine.cli",
        "--address",
        dev_server.address,
        "--task-queue",
        queue,
        "--data-dir",
        str(tmp_path),
        "serve",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert serve.stdout is not None
        line = (await asyncio.wait_for(serve.stdout.readline(), 60)).decode()
        assert line.startswith("webhooks: http://127.0.0.1:"), line
        base = line.split()[1].removesuffix("/hooks/<hook")
        raw, headers = _signed(created["secret"], {"via": "serve"}, key="cli")
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            response = await http.post(f"/hooks/{hook_id}", content=raw, headers=headers)
        assert response.status_code == 202, response.text
    finally:
        serve.terminate()
        _, stderr = await serve.communicate()
    assert serve.returncode == 0, stderr.decode()

    await _cli(dev_server, queue, tmp_path, "hook", "delete", hook_id)
    assert await hooked.list_hooks() == []


async def test_hostile_bodies_and_keys_are_refused(
    hooked: AdvancedPluginOrchestrator, http: httpx.AsyncClient, worker: object, unique
) -> None:
    definition = chain(unique("hostile"), 1)
    await hooked.register_workflow(definition)
    hook_id = unique("hostile")
    secret = await hooked.create_hook(hook_id, definition.workflow_id, idempotency_field="delivery")
    cases: dict[str, tuple[bytes, str | None]] = {
        "not an object": (b"[1, 2]", None),
        "not JSON": (b"{nope", None),
        "not UTF-8": (b'{"a": "\xff"}', None),
        "duplicate keys": (b'{"a": 1, "a": 2}', None),
        "too deep": (b'{"a": ' * 200 + b"1" + b"}" * 200, None),
        "NaN": (b'{"a": NaN}', None),
        "key too long": (b"{}", "k" * 201),
        "key with a newline": (b"{}", "a\tb"),
        "field of another type": (b'{"delivery": {"x": 1}}', None),
    }
    for what, (raw, key) in cases.items():
        _, headers = _signed(secret, raw, key=key)
        response = await _post(http, hook_id, raw, headers)
        assert response.status_code == 422, (what, response.text)
        assert response.json()["code"] == "InvalidInput", what

    # The configured body field is the key when no header names one.
    raw, headers = _signed(secret, {"delivery": "d-1", "n": 1})
    first = await _post(http, hook_id, raw, headers)
    assert first.status_code == 202, first.text
    assert first.json()["execution_id"] == execution_id_for(
        definition.workflow_id, delivery_suffix(hook_id, "d-1")
    )
    raw, headers = _signed(secret, {"delivery": "d-1", "n": 2})
    assert (await _post(http, hook_id, raw, headers)).status_code == 200

    # Bad hook settings are refused when the hook is made.
    for options in (
        {"max_body_bytes": 10_000_000},
        {"rate_per_minute": 0},
        {"tolerance_seconds": 86_400},
        {"source": "no-such-node"},
    ):
        with pytest.raises(PluginError) as info:
            await hooked.create_hook(unique("bad"), definition.workflow_id, **options)  # type: ignore[arg-type]
        assert info.value.code is PluginErrorCode.InvalidInput, options
    with pytest.raises(PluginError) as info:
        await hooked.create_hook("bad id!", definition.workflow_id)
    assert info.value.code is PluginErrorCode.InvalidInput
    with pytest.raises(PluginError) as info:
        await hooked.create_hook(unique("ok"), unique("missing"))
    assert info.value.code is PluginErrorCode.WorkflowNotFound
