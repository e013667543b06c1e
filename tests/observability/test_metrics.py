"""Metrics: the SDK runtime's Prometheus endpoint with the engine's per-node metrics, served
by ``run_worker(metrics_bind=...)`` and scraped over HTTP."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import httpx
import pytest

import engine.hosting.worker
from engine import AdvancedPluginOrchestrator, WorkflowExecutionMode, WorkflowExecutionStatus
from engine.hosting.devserver import DevServer, free_port
from engine.hosting.worker import run_worker
from engine.temporal.telemetry import NODE_DURATION_METRIC, NODE_OUTCOMES_METRIC
from plugins import PluginRegistry
from tests.helpers.builders import edge, node, workflow
from tests.helpers.waiting import eventually

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?P<labels>.*)\})? (?P<value>\S+)$")


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples of metric ``name`` in a Prometheus text exposition."""
    found = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match["name"] != name:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match["labels"] or ""))
        found.append((labels, float(match["value"])))
    return found


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(
        number
        for found, number in samples(text, name)
        if all(found.get(key) == wanted for key, wanted in labels.items())
    )


async def test_prometheus_endpoint_with_node_metrics(
    monkeypatch: pytest.MonkeyPatch,
    dev_server: DevServer,
    orchestrator: AdvancedPluginOrchestrator,
    task_queue: str,
    registry: PluginRegistry,
    unique: Callable[[str], str],
) -> None:
    # run_worker configures the process's logging; the test session keeps its own.
    monkeypatch.setattr(engine.hosting.worker, "configure_logging", lambda: None)
    bind = f"127.0.0.1:{free_port()}"
    stop = asyncio.Event()
    serving = asyncio.create_task(
        run_worker(
            target=dev_server.address,
            task_queue=task_queue,
            plugins=registry,
            graceful_shutdown=2.0,
            stop=stop,
            metrics_bind=bind,
        )
    )
    try:
        wf = workflow(
            unique("metered"),
            [
                node("first", "echo"),
                node("second", "flaky", succeed_on=2, retry={"initial_interval": 0.1}),
            ],
            [edge("first", "second")],
            mode=WorkflowExecutionMode.Sequential,
        )
        await eventually(_catalog_lists(orchestrator), bool)
        await orchestrator.register_workflow(wf)
        execution_id = await orchestrator.execute_workflow(wf.workflow_id)
        context = await orchestrator.wait_for_completion(execution_id, timeout=60)
        assert context.status is WorkflowExecutionStatus.Completed, context.error_messages

        async with httpx.AsyncClient(timeout=5.0) as http:

            async def scrape() -> str:
                response = await http.get(f"http://{bind}/metrics")
                response.raise_for_status()
                return response.text

            text = await eventually(
                scrape,
                lambda text: value(text, NODE_OUTCOMES_METRIC, workflow_id=wf.workflow_id) >= 3,
                timeout=15,
            )
    finally:
        stop.set()
        await serving

    mine = {"workflow_id": wf.workflow_id, "task_queue": task_queue}
    outcomes = {
        (labels["node_id"], labels["plugin_id"], labels["outcome"]): number
        for labels, number in samples(text, NODE_OUTCOMES_METRIC)
        if all(labels.get(key) == wanted for key, wanted in mine.items())
    }
    assert outcomes == {
        ("first", "echo", "completed"): 1,
        ("second", "flaky", "failed"): 1,
        ("second", "flaky", "completed"): 1,
    }
    # The duration histogram: one observation per attempt, in seconds.
    counts = {
        (labels["node_id"], labels["outcome"]): number
        for labels, number in samples(text, f"{NODE_DURATION_METRIC}_count")
        if all(labels.get(key) == wanted for key, wanted in mine.items())
    }
    assert counts == {
        ("first", "completed"): 1,
        ("second", "failed"): 1,
        ("second", "completed"): 1,
    }
    total = value(text, f"{NODE_DURATION_METRIC}_sum", node_id="first", **mine)
    assert 0 <= total < 5
    buckets = {
        labels["le"]
        for labels, _ in samples(text, f"{NODE_DURATION_METRIC}_bucket")
        if labels.get("workflow_id") == wf.workflow_id
    }
    assert {"0.005", "1", "3600", "+Inf"} <= buckets
    # The SDK's own metrics come from the same endpoint.
    assert value(text, "temporal_activity_execution_latency_count", task_queue=task_queue) >= 3
    assert value(text, "temporal_workflow_completed", task_queue=task_queue) >= 1


def _catalog_lists(orchestrator: AdvancedPluginOrchestrator) -> Callable[[], object]:
    async def probe() -> bool:
        catalog = await orchestrator.get_plugin_catalog()
        return any(info.plugin_id == "flaky" for info in catalog)

    return probe
