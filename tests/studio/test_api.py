"""The studio's JSON API against the real dev server and an in-process worker."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from engine import AdvancedPluginOrchestrator, PluginError, PluginErrorCode
from engine.studio import StudioServer, create_app, serve
from tests.helpers.builders import chain, edge, node, workflow
from tests.helpers.histories import scheduled_activities
from tests.helpers.plugins import read_count
from tests.helpers.waiting import eventually
from tests.studio.conftest import UI_URL

pytestmark = pytest.mark.integration


def definition_json(workflow_id: str, **kw: Any) -> dict[str, Any]:
    return chain(workflow_id, 3, **kw).to_json()


def sleep_chain(workflow_id: str, seconds: float, length: int = 3) -> dict[str, Any]:
    definition = chain(workflow_id, length, mode="sequential")
    definition.nodes = [node(f"n{i}", "sleep", seconds=seconds) for i in range(length)]
    return definition.to_json()


async def execution(api: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    response = await api.get(f"/api/executions/{execution_id}", params={"definition": "false"})
    assert response.status_code == 200, response.text
    context: dict[str, Any] = response.json()["context"]
    return context


async def wait_status(api: httpx.AsyncClient, execution_id: str, *statuses: str) -> dict[str, Any]:
    return await eventually(
        lambda: execution(api, execution_id), lambda c: c["status"] in statuses, timeout=60
    )


async def wait_node(
    api: httpx.AsyncClient, execution_id: str, node_id: str, status: str
) -> dict[str, Any]:
    return await eventually(
        lambda: execution(api, execution_id),
        lambda c: c["node_states"].get(node_id, {}).get("status") == status,
        timeout=60,
    )


# -- definitions ---------------------------------------------------------------------------


async def test_definitions_crud(api: httpx.AsyncClient, worker: object, unique) -> None:
    workflow_id = unique("crud")
    body = definition_json(workflow_id)
    body["name"] = "CRUD pipeline"
    body["nodes"][0]["ui_properties"] = {"position": {"x": 10, "y": 20}}

    created = await api.put(f"/api/workflows/{workflow_id}", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["created"] is True
    assert created.json()["workflow"]["version"] == 1

    read = await api.get(f"/api/workflows/{workflow_id}")
    assert read.status_code == 200
    stored = read.json()
    assert stored["version"] == 1
    assert stored["name"] == "CRUD pipeline"
    assert stored["nodes"][0]["ui_properties"] == {"position": {"x": 10, "y": 20}}

    listing = (await api.get("/api/workflows")).json()
    [row] = [r for r in listing if r["workflow_id"] == workflow_id]
    assert row == {
        "workflow_id": workflow_id,
        "name": "CRUD pipeline",
        "description": "",
        "execution_mode": "parallel",
        "version": 1,
        "nodes": 3,
        "connections": 2,
    }

    body["description"] = "now with a description"
    updated = await api.put(
        f"/api/workflows/{workflow_id}", json=body, params={"expected_version": 1}
    )
    assert updated.status_code == 200, updated.text
    assert updated.json() == {
        "created": False,
        "workflow": {**updated.json()["workflow"], "version": 2},
    }
    assert (await api.get(f"/api/workflows/{workflow_id}")).json()["version"] == 2

    stale = await api.put(
        f"/api/workflows/{workflow_id}", json=body, params={"expected_version": 1}
    )
    assert stale.status_code == 409
    assert stale.json()["code"] == "InvalidState"
    assert "version 2, not 1" in stale.json()["message"]

    deleted = await api.delete(f"/api/workflows/{workflow_id}", headers=_json_type())
    assert deleted.status_code == 204
    missing = await api.get(f"/api/workflows/{workflow_id}")
    assert missing.status_code == 404
    assert missing.json()["code"] == "WorkflowNotFound"
    assert workflow_id in missing.json()["message"]
    again = await api.delete(f"/api/workflows/{workflow_id}", headers=_json_type())
    assert again.status_code == 404


async def test_registration_errors_are_422_with_problems(
    api: httpx.AsyncClient, worker: object, unique
) -> None:
    workflow_id = unique("invalid")
    cyclic = workflow(
        workflow_id,
        [node("a"), node("b"), node("c")],
        [edge("a", "b"), edge("b", "c"), edge("c", "a")],
    ).to_json()
    response = await api.put(f"/api/workflows/{workflow_id}", json=cyclic)
    assert response.status_code == 422
    error = response.json()
    assert error["code"] == "CircularDependency"
    assert "a -> b -> c -> a" in error["message"]
    [problem] = error["details"]["problems"]
    assert problem["code"] == "CircularDependency"
    assert problem["nodes"] == ["a", "b", "c"]
    assert problem["connections"] == [0, 1, 2]
    assert (await api.get(f"/api/workflows/{workflow_id}")).status_code == 404

    # Several problems at once, each naming its node or connection.
    broken = workflow(
        workflow_id,
        [node("a"), node("b", "greet", greeting="hi")],
        [edge("a", "b", target_port="nope"), edge("a", "ghost")],
    ).to_json()
    broken["nodes"][1]["input_ports"] = ["person"]
    response = await api.put(f"/api/workflows/{workflow_id}", json=broken)
    assert response.status_code == 422
    problems = response.json()["details"]["problems"]
    assert [p["code"] for p in problems] == ["InvalidConnection", "NodeNotFound"]
    assert problems[0]["nodes"] == ["b"]
    assert problems[0]["connections"] == [0]
    assert problems[1]["connections"] == [1]
    assert "'ghost' is not a node" in problems[1]["message"]

    # The catalog check: an unknown plugin, a configuration that does not fit the schema.
    unknown = workflow(workflow_id, [node("x", "no_such_plugin")]).to_json()
    response = await api.put(f"/api/workflows/{workflow_id}", json=unknown)
    assert response.status_code == 422
    assert response.json()["code"] == "PluginNotFound"
    assert response.json()["details"]["problems"][0]["nodes"] == ["x"]
    bad_config = workflow(workflow_id, [node("hello", "greet", times=9)]).to_json()
    response = await api.put(f"/api/workflows/{workflow_id}", json=bad_config)
    assert response.status_code == 422
    assert response.json()["code"] == "InvalidWorkflowStructure"
    assert "'greeting' is a required property" in response.json()["message"]

    # A body the engine's model refuses, and an id that is not the path's.
    typo = definition_json(workflow_id)
    typo["nodes"][1]["node_type"] = "bogus"
    response = await api.put(f"/api/workflows/{workflow_id}", json=typo)
    assert response.status_code == 422
    assert response.json()["code"] == "InvalidWorkflowStructure"
    [problem] = response.json()["details"]["problems"]
    assert problem["message"].startswith("nodes.1.node_type:")
    assert problem["nodes"] == ["n1"]
    response = await api.put(f"/api/workflows/{workflow_id}-other", json=definition_json("x"))
    assert response.status_code == 422
    assert response.json()["code"] == "InvalidInput"
    response = await api.put(f"/api/workflows/{workflow_id}", json=[1, 2])
    assert response.status_code == 422
    assert response.json()["code"] == "InvalidInput"


async def test_validate_without_saving(api: httpx.AsyncClient, worker: object, unique) -> None:
    workflow_id = unique("validate")
    ok = await api.post("/api/validate", json=definition_json(workflow_id))
    assert ok.status_code == 200
    assert ok.json() == {"ok": True, "problems": [], "catalog_checked": True}
    assert (await api.get(f"/api/workflows/{workflow_id}")).status_code == 404

    invalid = workflow(
        workflow_id,
        [node("a"), node("b"), node("c", "greet"), node("d", "wait")],
        [edge("a", "b", condition="size >"), edge("b", "b")],
    ).to_json()
    report = (await api.post("/api/validate", json=invalid)).json()
    assert report["ok"] is False
    by_code = {(p["code"], tuple(p["nodes"]), tuple(p["connections"])) for p in report["problems"]}
    assert ("InvalidConnection", (), (0,)) in by_code  # the condition's syntax
    assert ("CircularDependency", ("b",), (1,)) in by_code  # the self-loop
    assert any("node 'd' (wait)" in p["message"] for p in report["problems"])

    # Structure fine, configuration against the catalog not: every node is reported.
    configs = workflow(
        workflow_id, [node("c", "greet"), node("e", "greet", greeting=1), node("f", "nope")]
    ).to_json()
    report = (await api.post("/api/validate", json=configs)).json()
    assert report["ok"] is False
    assert [(p["code"], p["nodes"]) for p in report["problems"]] == [
        ("InvalidWorkflowStructure", ["c"]),
        ("InvalidWorkflowStructure", ["e"]),
        ("PluginNotFound", ["f"]),
    ]


async def test_validate_compiles_expressions_and_reports_every_problem(
    api: httpx.AsyncClient, worker: object, unique
) -> None:
    """The live check compiles the expressions the catalog's schemas mark, and reports them
    beside the structural problems, each naming its node."""
    workflow_id = unique("validate-expr")
    definition = workflow(
        workflow_id,
        [
            node("load", "data_source", records=[{"score": 90}]),
            node("keep", "data_processor", filter="score >= "),
            node("shape", "data_transformer", set={"double": "score * 2", "bad": "score +"}),
            node("pick", "json_transform", mapping={"first": "items[0"}),
            node("send", "no_such_plugin"),
        ],
        [edge("load", "keep"), edge("keep", "shape"), edge("shape", "ghost")],
    ).to_json()
    report = (await api.post("/api/validate", json=definition)).json()
    assert report["ok"] is False
    assert report["code"] == "NodeNotFound"
    assert [(p["code"], p["nodes"]) for p in report["problems"]] == [
        ("NodeNotFound", []),
        ("InvalidWorkflowStructure", ["keep"]),
        ("InvalidWorkflowStructure", ["shape"]),
        ("InvalidWorkflowStructure", ["pick"]),
        ("PluginNotFound", ["send"]),
    ]
    assert report["problems"][0]["connections"] == [2]
    messages = [p["message"] for p in report["problems"]]
    assert messages[1] == (
        "node 'keep' (plugin 'data_processor') configuration: filter: 'score >= ' is not "
        "valid CEL: syntax error at column 7"
    )
    assert "set.bad: 'score +' is not valid CEL" in messages[2]
    assert "set.double" not in messages[2]
    assert "mapping.first: 'items[0' is not valid JMESPath" in messages[3]

    # Saving says the same, and nothing is stored.
    response = await api.put(f"/api/workflows/{workflow_id}", json=definition)
    assert response.status_code == 422
    assert [p["message"] for p in response.json()["details"]["problems"]] == messages
    assert (await api.get(f"/api/workflows/{workflow_id}")).status_code == 404

    fixed = workflow(
        workflow_id,
        [
            node("load", "data_source", records=[{"score": 90}]),
            node("keep", "data_processor", filter="score >= 80"),
        ],
        [edge("load", "keep")],
    ).to_json()
    ok = await api.post("/api/validate", json=fixed)
    assert ok.json() == {"ok": True, "problems": [], "catalog_checked": True}


async def test_catalog_lists_plugins_and_engine_nodes(api: httpx.AsyncClient, worker: object):
    catalog = (await api.get("/api/catalog")).json()
    assert catalog["published"] is True
    plugins = {p["plugin_id"]: p for p in catalog["plugins"]}
    assert {"echo", "sleep", "greet", "data_source", "numbers"} <= set(plugins)
    greet = plugins["greet"]
    assert greet["input_ports"] == ["person"]
    assert greet["output_ports"] == ["text"]
    assert greet["config_schema"]["required"] == ["greeting"]
    assert greet["engine"] is False
    assert plugins["numbers"]["node_type"] == "source"
    for engine_node, node_type in [
        ("aggregate", "aggregator"),
        ("split", "splitter"),
        ("wait", "custom"),
        ("approval", "custom"),
        ("subworkflow", "custom"),
    ]:
        entry = plugins[engine_node]
        assert entry["engine"] is True
        assert entry["node_type"] == node_type
        assert entry["config_schema"]["type"] == "object"
    assert plugins["aggregate"]["config_schema"]["properties"]["strategy"]["enum"] == [
        "list",
        "merge",
        "first",
        "count",
    ]


# -- executions ----------------------------------------------------------------------------


async def test_start_status_and_listing(api: httpx.AsyncClient, worker: object, unique) -> None:
    workflow_id = unique("run")
    assert (
        await api.put(f"/api/workflows/{workflow_id}", json=definition_json(workflow_id))
    ).is_success
    started = await api.post(
        f"/api/workflows/{workflow_id}/executions", json={"input_data": {"who": "ada"}}
    )
    assert started.status_code == 201, started.text
    execution_id = started.json()["execution_id"]
    assert execution_id.startswith(f"{workflow_id}/run-")
    assert started.json()["temporal_ui"].startswith(f"{UI_URL}/namespaces/default/workflows/")

    context = await wait_status(api, execution_id, "completed")
    assert context["progress"] == 1.0
    assert {s["status"] for s in context["node_states"].values()} == {"completed"}
    assert context["execution_data"]["input_data"] == {"who": "ada"}

    full = (await api.get(f"/api/executions/{execution_id}")).json()
    assert full["definition"]["workflow_id"] == workflow_id
    assert full["definition"]["version"] == 1
    assert [n["node_id"] for n in full["definition"]["nodes"]] == ["n0", "n1", "n2"]
    assert full["temporal_ui"].endswith(execution_id.replace("/", "%2F"))

    async def listed(**params: str) -> list[dict[str, Any]]:
        response = await api.get("/api/executions", params=params)
        assert response.status_code == 200, response.text
        rows: list[dict[str, Any]] = response.json()
        return rows

    rows = await eventually(
        lambda: listed(workflow_id=workflow_id),
        lambda rows: [r["status"] for r in rows] == ["completed"],
    )
    assert rows[0]["execution_id"] == execution_id
    assert rows[0]["workflow_version"] == 1
    assert rows[0]["execution_mode"] == "parallel"
    assert rows[0]["end_time"] is not None
    assert await listed(workflow_id=workflow_id, status="failed") == []
    assert [
        r["execution_id"] for r in await listed(workflow_id=workflow_id, status="completed")
    ] == [execution_id]
    bad = await api.get("/api/executions", params={"status": "sleeping"})
    assert bad.status_code == 422
    assert bad.json()["code"] == "InvalidInput"
    bad = await api.get("/api/executions", params={"workflow_id": "it's"})
    assert bad.status_code == 422


async def test_event_stream_in_order_to_the_terminal_event(
    api: httpx.AsyncClient, worker: object, unique
) -> None:
    workflow_id = unique("sse")
    await api.put(f"/api/workflows/{workflow_id}", json=sleep_chain(workflow_id, 0.2))
    started = await api.post(f"/api/workflows/{workflow_id}/executions", json={})
    execution_id = started.json()["execution_id"]

    async with api.stream("GET", f"/api/executions/{execution_id}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        messages = await read_sse(response)
    events = [json.loads(m["data"]) for m in messages if m.get("event", "message") == "message"]
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    assert [m["id"] for m in messages if "id" in m] == [str(e["sequence"]) for e in events]
    types = [e["type"] for e in events]
    assert types[0] == "workflow_started"
    assert types[-1] == "workflow_completed"
    started_nodes = [e["node_id"] for e in events if e["type"] == "node_started"]
    assert started_nodes == ["n0", "n1", "n2"]
    assert messages[-1]["event"] == "end"

    # From a sequence on (as a reconnecting EventSource asks with Last-Event-ID).
    async with api.stream(
        "GET", f"/api/executions/{execution_id}/events", headers={"Last-Event-ID": "3"}
    ) as response:
        later = [
            json.loads(m["data"])["sequence"]
            for m in await read_sse(response)
            if m.get("event", "message") == "message"
        ]
    assert later == list(range(4, len(events) + 1))

    missing = await api.get(f"/api/executions/{workflow_id}/run-0000/events")
    assert missing.status_code == 404
    assert missing.json()["code"] == "ExecutionNotFound"


async def read_sse(response: httpx.Response) -> list[dict[str, str]]:
    """Messages of a Server-Sent Events stream (comments and ``retry`` dropped)."""
    messages: list[dict[str, str]] = []
    current: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if current:
                messages.append(current)
            current = {}
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if field != "retry":
            current[field] = value.removeprefix(" ")
    if current:
        messages.append(current)
    return messages


async def test_pause_resume_cancel_and_their_conflicts(
    api: httpx.AsyncClient,
    orchestrator: AdvancedPluginOrchestrator,
    worker: object,
    unique,
    tmp_path: Path,
) -> None:
    workflow_id = unique("control")
    await api.put(f"/api/workflows/{workflow_id}", json=sleep_chain(workflow_id, 1.0))
    execution_id = (await api.post(f"/api/workflows/{workflow_id}/executions", json={})).json()[
        "execution_id"
    ]
    base = f"/api/executions/{execution_id}"
    await wait_node(api, execution_id, "n0", "running")

    assert (await api.post(f"{base}/resume", json={})).status_code == 409
    paused = await api.post(f"{base}/pause", json={})
    assert paused.status_code == 200, paused.text
    assert paused.json() == {"ok": True, "execution_id": execution_id}
    again = await api.post(f"{base}/pause", json={})
    assert again.status_code == 409
    assert again.json()["code"] == "InvalidState"
    context = await wait_node(api, execution_id, "n0", "completed")
    assert context["status"] == "paused"
    # The workflow task that recorded n0's completion started nothing.
    assert await scheduled_activities(orchestrator.client, execution_id) == ["n0"]
    assert (await execution(api, execution_id))["node_states"]["n1"]["status"] == "pending"
    assert read_count(tmp_path, "n1.started") == 0
    rows = (await api.get("/api/executions", params={"workflow_id": workflow_id})).json()
    assert [(r["execution_id"], r["status"], r["active"]) for r in rows] == [
        (execution_id, "paused", True)
    ]
    assert (await api.get("/api/executions", params={"status": "paused"})).json()[0][
        "execution_id"
    ] == execution_id

    assert (await api.post(f"{base}/resume", json={})).status_code == 200
    await wait_node(api, execution_id, "n1", "running")
    assert (await api.post(f"{base}/cancel", json={})).status_code == 200
    await wait_status(api, execution_id, "cancelled")
    assert (await api.post(f"{base}/cancel", json={})).status_code == 409
    assert (await api.post(f"{base}/pause", json={})).status_code == 409

    # A cancelled batch execution can be retried: completed nodes are kept.
    retried = await api.post(f"{base}/retry", json={})
    assert retried.status_code == 200, retried.text
    final = await wait_status(api, execution_id, "completed")
    assert final["node_states"]["n2"]["status"] == "completed"
    assert read_count(tmp_path, "n0") == 1
    assert (await api.post(f"{base}/retry", json={})).status_code == 409


async def test_node_skip_and_approve(api: httpx.AsyncClient, worker: object, unique) -> None:
    workflow_id = unique("nodes")
    definition = workflow(
        workflow_id,
        [node("ask", "approval", prompt="go?"), node("slow", "sleep", seconds=30), node("end")],
        [edge("ask", "slow"), edge("slow", "end")],
    ).to_json()
    await api.put(f"/api/workflows/{workflow_id}", json=definition)
    execution_id = (await api.post(f"/api/workflows/{workflow_id}/executions", json={})).json()[
        "execution_id"
    ]
    base = f"/api/executions/{execution_id}"
    await wait_node(api, execution_id, "ask", "running")
    wrong = await api.post(f"{base}/nodes/end/approve", json={})
    assert wrong.status_code == 409
    approved = await api.post(
        f"{base}/nodes/ask/approve", json={"approved": True, "by": "tester", "comment": "ok"}
    )
    assert approved.status_code == 200, approved.text
    await wait_node(api, execution_id, "slow", "running")
    skipped = await api.post(f"{base}/nodes/slow/skip", json={"output": {"slept": 0}})
    assert skipped.status_code == 200, skipped.text
    context = await wait_status(api, execution_id, "completed")
    assert context["node_states"]["ask"]["result"]["by"] == "tester"
    assert context["node_states"]["slow"]["result"] == {"slept": 0}
    assert (await api.post(f"{base}/nodes/slow/skip", json={})).status_code == 409
    bad = await api.post(f"{base}/nodes/ask/approve", json={"approved": "maybe"})
    assert bad.status_code == 422
    assert bad.json()["code"] == "InvalidInput"


async def test_not_found_and_conflict_mapping(api: httpx.AsyncClient, worker: object, unique):
    unknown = f"{unique('ghost')}/run-0123456789abcdef"
    for method, path in [
        ("GET", f"/api/executions/{unknown}"),
        ("POST", f"/api/executions/{unknown}/pause"),
        ("POST", f"/api/executions/{unknown}/cancel"),
        ("POST", f"/api/executions/{unknown}/retry"),
        ("POST", f"/api/executions/{unknown}/nodes/n0/skip"),
    ]:
        response = await api.request(method, path, json={} if method == "POST" else None)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["code"] == "ExecutionNotFound"
        assert set(response.json()) == {"code", "message", "details"}
    response = await api.post(f"/api/workflows/{unique('ghost')}/executions", json={})
    assert response.status_code == 404
    assert response.json()["code"] == "WorkflowNotFound"
    response = await api.get("/api/no/such/route")
    assert response.status_code == 404

    workflow_id = unique("conflict")
    await api.put(f"/api/workflows/{workflow_id}", json=definition_json(workflow_id))
    execution_id = (await api.post(f"/api/workflows/{workflow_id}/executions", json={})).json()[
        "execution_id"
    ]
    await wait_status(api, execution_id, "completed")
    response = await api.post(f"/api/executions/{execution_id}/nodes/zz/skip", json={})
    assert response.status_code == 409
    assert response.json()["code"] == "InvalidState"


async def test_worker_unavailable_is_503(
    orchestrator: AdvancedPluginOrchestrator, api: httpx.AsyncClient, unique
) -> None:
    # No worker on this task queue: the registry entity cannot answer its query.
    fast = AdvancedPluginOrchestrator(
        orchestrator.client, task_queue=orchestrator.task_queue, query_timeout=1.0
    )
    transport = httpx.ASGITransport(app=create_app(fast))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        workflow_id = unique("noworker")
        created = await client.put(
            f"/api/workflows/{workflow_id}", json=definition_json(workflow_id)
        )
        assert created.status_code == 201
        response = await client.get(f"/api/workflows/{workflow_id}")
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "WorkerUnavailable"


# -- security ------------------------------------------------------------------------------


async def test_token_is_required_when_set(
    orchestrator: AdvancedPluginOrchestrator, worker: object
) -> None:
    app = create_app(orchestrator, token="s3cret-token-0123456789")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        missing = await client.get("/api/info")
        assert missing.status_code == 401
        assert missing.json()["code"] == "Unauthorized"
        assert missing.headers["www-authenticate"].startswith("Bearer")
        wrong = await client.get("/api/info", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        basic = await client.get(
            "/api/info", headers={"Authorization": "Basic s3cret-token-0123456789"}
        )
        assert basic.status_code == 401
        ok = await client.get(
            "/api/info", headers={"Authorization": "Bearer s3cret-token-0123456789"}
        )
        assert ok.status_code == 200
        assert ok.json()["auth"] is True
        assert ok.json()["task_queue"] == orchestrator.task_queue
        # Control requests too.
        pause = await client.post("/api/executions/x/run-1/pause", json={})
        assert pause.status_code == 401
        # The event stream (EventSource sends no headers) takes ?token=, nothing else does.
        events = "/api/executions/x/run-1/events"
        assert (await client.get(events)).status_code == 401
        assert (await client.get(events, params={"token": "nope"})).status_code == 401
        assert (
            await client.get(events, params={"token": "s3cret-token-0123456789"})
        ).status_code == 404
        assert (
            await client.get("/api/info", params={"token": "s3cret-token-0123456789"})
        ).status_code == 401
        # The page itself is public (it asks for the token); the API is not.
        page = await client.get("/")
        assert page.status_code in (200, 503)
        assert page.headers["x-frame-options"] == "DENY"
        assert "default-src 'self'" in page.headers["content-security-policy"]


async def test_same_origin_basics(orchestrator: AdvancedPluginOrchestrator, app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        # A cross-site form can only post form or text bodies: refused.
        form = await client.post("/api/executions/x/run-1/pause", data={"a": "b"})
        assert form.status_code == 415
        text = await client.post(
            "/api/executions/x/run-1/pause", content="{}", headers={"content-type": "text/plain"}
        )
        assert text.status_code == 415
        # No CORS: a preflight gets no allow-origin.
        preflight = await client.options(
            "/api/info",
            headers={"Origin": "https://evil.test", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in preflight.headers
        too_big = await client.post(
            "/api/validate",
            content=b"{" + b" " * (5 * 1024 * 1024) + b"}",
            headers=_json_type(),
        )
        assert too_big.status_code == 413
    guarded = create_app(orchestrator, allowed_hosts=["127.0.0.1", "localhost"])
    transport = httpx.ASGITransport(app=guarded)
    async with httpx.AsyncClient(transport=transport, base_url="http://evil.test:8080") as client:
        rebinding = await client.get("/api/info")
        assert rebinding.status_code == 400
        assert rebinding.json()["code"] == "InvalidHost"
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost:8080") as client:
        assert (await client.get("/api/info")).status_code == 200


async def test_refuses_a_public_address_without_a_token(
    orchestrator: AdvancedPluginOrchestrator,
) -> None:
    for host in ("0.0.0.0", "::", "192.0.2.10", "example.test"):
        with pytest.raises(PluginError) as info:
            StudioServer(orchestrator, host, 0)
        assert info.value.code is PluginErrorCode.InvalidConfiguration
        assert "without a token" in info.value.message
    with pytest.raises(PluginError, match="without a token"):
        await serve(orchestrator, host="0.0.0.0", port=0)
    StudioServer(orchestrator, "0.0.0.0", 0, token="t" * 16)  # with a token it may
    StudioServer(orchestrator, "localhost", 0)
    StudioServer(orchestrator, "::1", 0)


async def test_server_starts_serves_and_stops(
    orchestrator: AdvancedPluginOrchestrator, worker: object
) -> None:
    server = StudioServer(orchestrator, "127.0.0.1", 0, ui_url=UI_URL)
    await server.start()
    assert server.port > 0
    async with httpx.AsyncClient(base_url=server.url) as client:
        info = await client.get("/api/info")
        assert info.status_code == 200
        assert info.json()["temporal_ui"] == UI_URL
        # Another Host (DNS rebinding) is refused on a loopback server.
        evil = await client.get("/api/info", headers={"Host": "evil.test"})
        assert evil.status_code == 400
    # A second server cannot take the same port: a clear error, not an exit.
    with pytest.raises(PluginError, match="cannot listen"):
        await StudioServer(orchestrator, "127.0.0.1", server.port).start()
    await server.stop()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=server.url) as client:
            await client.get("/api/info")

    # serve() runs until cancelled, then stops cleanly.
    task = asyncio.create_task(serve(orchestrator, port=server.port))
    async with httpx.AsyncClient(base_url=server.url) as client:
        await eventually(lambda: _status(client), lambda s: s == 200, timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def _status(client: httpx.AsyncClient) -> int:
    try:
        return (await client.get("/api/info")).status_code
    except httpx.ConnectError:
        return 0


def _json_type() -> dict[str, str]:
    return {"content-type": "application/json"}


async def test_serves_the_built_front_end(api: httpx.AsyncClient) -> None:
    page = await api.get("/")
    assert page.status_code == 200, "build the front end: cd studio && npm run build"
    assert page.headers["content-type"].startswith("text/html")
    assert "<title>Orchestrator Studio</title>" in page.text
    scripts = [part.split('"')[0] for part in page.text.split('src="')[1:]]
    styles = [part.split('"')[0] for part in page.text.split('href="')[1:] if ".css" in part]
    assert scripts
    assert styles
    for asset in scripts + styles:
        response = await api.get(asset)
        assert response.status_code == 200, asset
    assert (await api.get("/favicon.svg")).status_code == 200
    assert (await api.get("/api/openapi.json")).json()["info"]["title"].endswith("studio")
