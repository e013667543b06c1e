"""``http_request`` and ``json_transform`` in real runs on the engine (Temporal dev server),
against an HTTP service the test starts on the loopback interface (Python's ``http.server``
in a thread; nothing mocked), and the catalog check of their configuration models.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from engine import (
    AdvancedPluginOrchestrator,
    PluginError,
    PluginErrorCode,
    PluginWorkflow,
    WorkflowConnection,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
    WorkflowNode,
)

ORDERS = [
    {"id": 1, "customer": "ada", "amount": 120.0},
    {"id": 2, "customer": "bob", "amount": 8.5},
    {"id": 3, "customer": "cid", "amount": 42.0},
]


class OrdersService:
    """A tiny orders API: ``/orders`` (JSON), ``/flaky`` (500 once, then the orders) and
    anything else 404. Counts requests per path."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.base = ""

    def count(self, path: str) -> int:
        with self.lock:
            return self.hits[path]


@pytest.fixture(name="orders_service")
def fixture_orders_service(monkeypatch: pytest.MonkeyPatch) -> Iterator[OrdersService]:
    # The worker (in this process) refuses loopback addresses unless its operator opens them.
    monkeypatch.setenv("ORCHESTRATOR_HTTP_ALLOW", "127.0.0.1")
    service = OrdersService()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            with service.lock:
                service.hits[path] += 1
                hits = service.hits[path]
            if path == "/orders" or (path == "/flaky" and hits > 1):
                self._send(200, json.dumps({"orders": ORDERS}).encode(), "application/json")
            elif path == "/flaky":
                self._send(503, b"warming up", "text/plain")
            else:
                self._send(404, b"not here", "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    service.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield service
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def fetch_shape_store(
    workflow_id: str, fetch: dict[str, Any], output: Path, **global_configuration: Any
) -> PluginWorkflow:
    """fetch (http_request) -> shape (json_transform) -> store (data_sink)."""
    return PluginWorkflow(
        workflow_id=workflow_id,
        execution_mode=WorkflowExecutionMode.Sequential,
        nodes=[
            WorkflowNode(node_id="fetch", plugin_id="http_request", configuration=fetch),
            WorkflowNode(
                node_id="shape",
                plugin_id="json_transform",
                configuration={
                    "mapping": {
                        "records": "fetch.json.orders[?amount >= `10`]",
                        "total": "sum(fetch.json.orders[].amount)",
                        "customers": "fetch.json.orders[].customer",
                    }
                },
            ),
            WorkflowNode(
                node_id="store", plugin_id="data_sink", configuration={"path": str(output)}
            ),
        ],
        connections=[
            WorkflowConnection(source_node="fetch", target_node="shape"),
            WorkflowConnection(source_node="shape", target_node="store"),
        ],
        global_configuration=global_configuration,
    )


async def test_fetch_reshape_and_store(
    orchestrator: AdvancedPluginOrchestrator,
    worker: object,
    unique,
    orders_service: OrdersService,
    tmp_path: Path,
) -> None:
    output = tmp_path / "big-orders.json"
    definition = fetch_shape_store(
        unique("http-pipeline"), {"url": f"{orders_service.base}/orders"}, output
    )
    await orchestrator.register_workflow(definition)
    context = await orchestrator.wait_for_completion(
        await orchestrator.execute_workflow(definition.workflow_id), 60
    )
    assert context.status is WorkflowExecutionStatus.Completed, context.error_messages
    fetched = context.node_states["fetch"]["result"]
    assert (fetched["status"], fetched["json"]) == (200, {"orders": ORDERS})
    shaped = context.node_states["shape"]["result"]
    assert shaped["total"] == 170.5
    assert shaped["customers"] == ["ada", "bob", "cid"]
    assert json.loads(output.read_text()) == [ORDERS[0], ORDERS[2]]
    assert context.execution_data["results"]["store"]["count"] == 2


async def test_5xx_is_retried_and_4xx_is_not(
    orchestrator: AdvancedPluginOrchestrator,
    worker: object,
    unique,
    orders_service: OrdersService,
    tmp_path: Path,
) -> None:
    # A 503 with no retries inside the attempt: the engine's retry policy tries again.
    flaky = fetch_shape_store(
        unique("http-flaky"),
        {"url": f"{orders_service.base}/flaky", "retries": 0},
        tmp_path / "out.json",
        retry={"max_attempts": 3, "initial_interval": 0.2},
    )
    await orchestrator.register_workflow(flaky)
    context = await orchestrator.wait_for_completion(
        await orchestrator.execute_workflow(flaky.workflow_id), 60
    )
    assert context.status is WorkflowExecutionStatus.Completed, context.error_messages
    assert context.node_states["fetch"]["attempts"] == 2
    assert orders_service.count("/flaky") == 2

    # A 404 is the request's fault: one attempt, a clear terminal error.
    missing = fetch_shape_store(
        unique("http-missing"),
        {"url": f"{orders_service.base}/nowhere", "retries": 2},
        tmp_path / "never.json",
        retry={"max_attempts": 3, "initial_interval": 0.2},
    )
    await orchestrator.register_workflow(missing)
    context = await orchestrator.wait_for_completion(
        await orchestrator.execute_workflow(missing.workflow_id), 60
    )
    assert context.status is WorkflowExecutionStatus.Failed
    error = context.node_states["fetch"]["error"]
    assert error["type"] == "PluginExecutionFailed"
    assert f"{orders_service.base}/nowhere" in error["message"]
    assert "404" in error["message"]
    assert context.node_states["fetch"]["attempts"] == 1
    assert orders_service.count("/nowhere") == 1
    assert not (tmp_path / "never.json").exists()


async def test_the_worker_refuses_loopback_unless_its_operator_allows_it(
    orchestrator: AdvancedPluginOrchestrator,
    worker: object,
    unique,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A definition cannot make the worker call its own host: the node fails once, terminal,
    naming the address, the rule and the worker setting that would open it, and the
    listener on that address never saw a connection."""
    monkeypatch.delenv("ORCHESTRATOR_HTTP_ALLOW", raising=False)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/admin"
        definition = fetch_shape_store(
            unique("http-egress"),
            {"url": url},
            tmp_path / "never.json",
            retry={"max_attempts": 3, "initial_interval": 0.2},
        )
        await orchestrator.register_workflow(definition)
        context = await orchestrator.wait_for_completion(
            await orchestrator.execute_workflow(definition.workflow_id), 60
        )
        assert context.status is WorkflowExecutionStatus.Failed
        fetch = context.node_states["fetch"]
        assert fetch["attempts"] == 1
        assert fetch["error"]["type"] == "PluginExecutionFailed"
        assert "refused to connect to 127.0.0.1" in fetch["error"]["message"]
        assert "loopback (127.0.0.0/8)" in fetch["error"]["message"]
        assert "ORCHESTRATOR_HTTP_ALLOW" in fetch["error"]["message"]
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing ever connected
    assert not (tmp_path / "never.json").exists()


async def test_registration_refuses_bad_configurations(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, tmp_path: Path
) -> None:
    for fetch, field in [
        ({"url": "http://127.0.0.1:1/x", "retires": 3}, "retires"),
        ({"url": "file:///etc/passwd"}, "url"),
        ({"url": "http://127.0.0.1:1/x", "request_timeout": -1}, "request_timeout"),
    ]:
        definition = fetch_shape_store(unique("http-bad"), fetch, tmp_path / "x.json")
        with pytest.raises(PluginError) as info:
            await orchestrator.register_workflow(definition)
        assert info.value.code is PluginErrorCode.InvalidWorkflowStructure
        assert "node 'fetch'" in info.value.message
        assert field in info.value.message

    definition = fetch_shape_store(
        unique("jmes-bad"), {"url": "http://127.0.0.1:1/x"}, tmp_path / "x.json"
    )
    definition.nodes[1].configuration = {"mapping": {"a": "x"}, "expresion": "y"}
    with pytest.raises(PluginError) as info:
        await orchestrator.register_workflow(definition)
    assert "node 'shape'" in info.value.message
    assert "expresion" in info.value.message
