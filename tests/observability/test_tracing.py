"""Tracing through the SDK's interceptor: one trace per execution, a span per node attempt.

The client has the tracing interceptor of a provider with an in-memory exporter; the worker
runs on that client (workers inherit client interceptors) with the workflow cache off, so
every workflow task replays and spans must not be duplicated by replays.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from engine import AdvancedPluginOrchestrator, WorkflowExecutionMode, WorkflowExecutionStatus
from engine.hosting.connection import connect
from engine.hosting.devserver import DevServer
from engine.hosting.worker import create_worker
from engine.runtime.contracts import EXECUTION_WORKFLOW, NODE_ACTIVITY
from engine.temporal import telemetry
from plugins import PluginRegistry
from tests.helpers.builders import edge, node, workflow


@pytest.fixture(name="exporter")
def fixture_exporter(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """This process's tracing, configured with an in-memory exporter for the test only."""
    monkeypatch.setattr(telemetry, "_tracing", telemetry._Tracing())
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    assert telemetry.configure_tracing(provider, set_global=False) is provider
    yield exporter
    provider.shutdown()


def test_tracing_is_off_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "ORCHESTRATOR_TRACING",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_SDK_DISABLED",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(telemetry, "_tracing", telemetry._Tracing())
    assert telemetry.tracing_mode() == "off"
    assert telemetry.client_interceptors() == []
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert telemetry.tracing_mode() == "otlp"
    monkeypatch.setenv("ORCHESTRATOR_TRACING", "off")
    assert telemetry.tracing_mode() == "off"
    monkeypatch.setenv("ORCHESTRATOR_TRACING", "console")
    assert telemetry.tracing_mode() == "console"
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert telemetry.tracing_mode() == "off"


def test_otlp_provider_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The OTLP (HTTP) exporter is built from the standard variables; nothing is sent here."""
    monkeypatch.setattr(telemetry, "_tracing", telemetry._Tracing())
    monkeypatch.delenv("ORCHESTRATOR_TRACING", raising=False)
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    provider = telemetry.configure_tracing(set_global=False)
    assert provider is not None
    try:
        assert provider.resource.attributes["service.name"] == "plugin-orchestrator"
        assert telemetry.configure_tracing() is provider  # once per process
        assert len(telemetry.client_interceptors()) == 1
    finally:
        provider.shutdown()


async def test_one_trace_per_execution_and_a_span_per_node_attempt(
    exporter: InMemorySpanExporter,
    dev_server: DevServer,
    task_queue: str,
    registry: PluginRegistry,
    unique: Callable[[str], str],
) -> None:
    client = await connect(dev_server.address)  # gets the configured tracing interceptor
    assert len(client.config()["interceptors"]) == 1
    orchestrator = AdvancedPluginOrchestrator(client, task_queue=task_queue, query_timeout=5.0)
    wf = workflow(
        unique("traced"),
        [
            node("first", "echo"),
            node("second", "flaky", succeed_on=2, retry={"initial_interval": 0.1}),
        ],
        [edge("first", "second")],
        mode=WorkflowExecutionMode.Sequential,
    )
    worker = create_worker(client, task_queue=task_queue, plugins=registry, max_cached_workflows=0)
    async with worker:
        await orchestrator.register_workflow(wf)
        execution_id = await orchestrator.execute_workflow(wf.workflow_id, {"x": 1})
        context = await orchestrator.wait_for_completion(execution_id, timeout=60)
    assert context.status is WorkflowExecutionStatus.Completed, context.error_messages

    spans = exporter.get_finished_spans()
    starts = [
        span
        for span in spans
        if span.name == f"StartWorkflow:{EXECUTION_WORKFLOW}"
        and _attr(span, "temporalWorkflowID") == execution_id
    ]
    assert len(starts) == 1
    root = starts[0]
    assert root.parent is None
    trace_id = _context(root).trace_id
    in_trace = [span for span in spans if _context(span).trace_id == trace_id]
    names = Counter(span.name for span in in_trace)
    assert names[f"RunWorkflow:{EXECUTION_WORKFLOW}"] == 1, names
    assert names[f"CompleteWorkflow:{EXECUTION_WORKFLOW}"] == 1, names
    assert names[f"StartActivity:{NODE_ACTIVITY}"] == 2, names  # one per node
    attempts = [span for span in in_trace if span.name == f"RunActivity:{NODE_ACTIVITY}"]
    assert len(attempts) == 3, names  # first: 1 attempt, second: 2

    # Every node span of this execution is in its trace.
    everywhere = [
        span for span in spans if _attr(span, "orchestrator.execution_id") == execution_id
    ]
    assert sorted(id(span) for span in everywhere) == sorted(id(span) for span in attempts)

    by_node: dict[str, list[ReadableSpan]] = {}
    for span in attempts:
        assert _attr(span, "orchestrator.workflow_id") == wf.workflow_id
        assert _attr(span, "orchestrator.execution_id") == execution_id
        assert _attr(span, "temporalWorkflowID") == execution_id
        by_node.setdefault(str(_attr(span, "orchestrator.node_id")), []).append(span)
    assert sorted(by_node) == ["first", "second"]
    assert [_attr(span, "orchestrator.plugin_id") for span in by_node["first"]] == ["echo"]
    assert [_attr(span, "orchestrator.attempt") for span in by_node["first"]] == [1]
    assert [_attr(span, "orchestrator.outcome") for span in by_node["first"]] == ["completed"]
    second = sorted(by_node["second"], key=lambda span: int(_attr(span, "orchestrator.attempt")))
    assert [_attr(span, "orchestrator.plugin_id") for span in second] == ["flaky", "flaky"]
    assert [_attr(span, "orchestrator.attempt") for span in second] == [1, 2]
    assert [_attr(span, "orchestrator.outcome") for span in second] == ["failed", "completed"]
    assert second[0].status.status_code is StatusCode.ERROR
    assert "attempt 1 failed" in (second[0].status.description or "")
    assert second[1].status.status_code is not StatusCode.ERROR
    # Both attempts of a node hang under the node's one StartActivity span.
    parents = {span.parent.span_id for span in second if span.parent is not None}
    assert len(parents) == 1


def _context(span: ReadableSpan):  # type: ignore[no-untyped-def]
    context = span.context
    assert context is not None
    return context


def _attr(span: ReadableSpan, name: str) -> object:
    return (span.attributes or {}).get(name)
