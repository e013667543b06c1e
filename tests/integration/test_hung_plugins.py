"""Hung plugins cannot take a worker down with them (issue 11, item 11).

A synchronous plugin's thread cannot be killed: after its attempt times out or is cancelled
the thread is abandoned (it no longer holds a plugin thread slot nor an activity slot, and is
no longer heartbeated), and a worker with too many abandoned threads says so and takes no more
node activities until they end. An async plugin that swallows its cancellation gets a short
grace, then is abandoned: cancelling its execution ends the run within that grace.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import structlog
from structlog.testing import capture_logs
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from activities.capacity import (
    ABANDONED_ATTEMPTS_METRIC,
    ABANDONED_THREADS_METRIC,
    CANCEL_GRACE_SECONDS,
    SATURATED_METRIC,
)
from engine import AdvancedPluginOrchestrator, WorkflowExecutionStatus
from engine.hosting.connection import connect
from engine.hosting.devserver import DevServer, free_port
from engine.hosting.worker import create_worker
from engine.temporal.telemetry import metrics_runtime
from plugins import PluginContext, PluginRegistry
from tests.helpers.builders import node, workflow
from tests.helpers.waiting import eventually
from tests.observability.test_metrics import value

pytestmark = pytest.mark.integration

Status = WorkflowExecutionStatus
HUNG = 36  # more than the default 32 plugin threads


@pytest.fixture(name="release")
def fixture_release() -> Iterator[threading.Event]:
    """Set at the end of the test: hung plugins return then (threads must not outlive it)."""
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture(name="hanging")
def fixture_hanging(registry: PluginRegistry, release: threading.Event) -> dict[str, int]:
    """``hang_sync`` blocks its thread, ``hang_async`` swallows every cancellation; both until
    the test ends. The returned counters tell how many started and swallowed."""
    seen = {"started": 0, "swallowed": 0}

    @registry.plugin("hang_sync")
    def hang_sync(
        inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext
    ) -> dict[str, Any]:
        seen["started"] += 1
        release.wait(float(config.get("seconds", 300)))
        return {}

    @registry.plugin("hang_async")
    async def hang_async(
        inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext
    ) -> dict[str, Any]:
        seen["started"] += 1
        while not release.is_set():
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                seen["swallowed"] += 1
        return {}

    return seen


async def test_hung_sync_plugins_past_their_timeout_leave_the_worker_serving(
    client: Client,
    task_queue: str,
    unique: Any,
    registry: PluginRegistry,
    hanging: dict[str, int],
) -> None:
    orchestrator = AdvancedPluginOrchestrator(client, task_queue=task_queue, query_timeout=5.0)
    hung = workflow(
        unique("hung"),
        [node(f"h{i}", "hang_sync", timeout=2, retry={"max_attempts": 1}) for i in range(HUNG)],
    )
    healthy = workflow(
        unique("healthy"), [node("sync", "count"), node("async", "echo"), node("sync2", "count")]
    )
    # As many activity slots as hung nodes: a slot kept by a timed-out attempt starves too.
    async with create_worker(
        client, task_queue=task_queue, plugins=registry, max_concurrent_activities=HUNG
    ):
        await orchestrator.register_workflow(hung)
        await orchestrator.register_workflow(healthy)
        failed = await orchestrator.wait_for_completion(
            await orchestrator.execute_workflow(hung.workflow_id), 60
        )
        assert failed.status is Status.Failed
        assert hanging["started"] >= 32  # nodes past the plugin threads may time out waiting
        # The first timeout fails the run, which cancels the other attempts: every attempt
        # has ended, none of their threads has.
        ended = {state["status"] for state in failed.node_states.values()}
        assert ended <= {"failed", "cancelled"}, failed.node_states
        assert "timed out" in " ".join(failed.error_messages)

        started = time.monotonic()
        context = await orchestrator.wait_for_completion(
            await orchestrator.execute_workflow(healthy.workflow_id), 30
        )
        assert context.status is Status.Completed, context.error_messages
        assert time.monotonic() - started < 15


async def test_cancel_ends_a_run_whose_async_plugin_swallows_cancellation(
    client: Client,
    task_queue: str,
    unique: Any,
    registry: PluginRegistry,
    hanging: dict[str, int],
) -> None:
    orchestrator = AdvancedPluginOrchestrator(client, task_queue=task_queue, query_timeout=5.0)
    definition = workflow(unique("stubborn"), [node("stubborn", "hang_async", timeout=300)])
    async with create_worker(client, task_queue=task_queue, plugins=registry):
        await orchestrator.register_workflow(definition)
        execution_id = await orchestrator.execute_workflow(definition.workflow_id)
        await eventually(lambda: _value(hanging, "started"), lambda n: n == 1)
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            started = time.monotonic()
            await orchestrator.cancel_execution(execution_id)
            context = await orchestrator.wait_for_completion(execution_id, 60)
            elapsed = time.monotonic() - started
    assert context.status is Status.Cancelled
    assert hanging["swallowed"] >= 1
    # The heartbeat that brings the cancellation (throttled to 1 s), the grace, the run's end.
    assert elapsed < CANCEL_GRACE_SECONDS + 10
    abandoned = [line for line in logs if line["event"] == "node attempt abandoned"]
    assert [(line["node_id"], line["attempt"], line["kind"]) for line in abandoned] == [
        ("stubborn", 1, "async")
    ]
    assert abandoned[0]["execution_id"] == execution_id
    handle = client.get_workflow_handle(execution_id)
    kinds = [event.event_type async for event in handle.fetch_history_events()]
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED in kinds


async def _value(seen: dict[str, int], key: str) -> int:
    return seen[key]


async def test_a_worker_saturated_by_abandoned_threads_says_so_and_recovers(
    dev_server: DevServer,
    task_queue: str,
    unique: Any,
    registry: PluginRegistry,
    hanging: dict[str, int],
    release: threading.Event,
) -> None:
    bind = f"127.0.0.1:{free_port()}"
    client = await connect(dev_server.address, runtime=metrics_runtime(bind))
    orchestrator = AdvancedPluginOrchestrator(client, task_queue=task_queue, query_timeout=5.0)
    hung = workflow(
        unique("hung"),
        [node(f"h{i}", "hang_sync", timeout=1, retry={"max_attempts": 1}) for i in range(2)],
    )
    healthy = workflow(unique("healthy"), [node("sync", "count")])
    worker = create_worker(
        client, task_queue=task_queue, plugins=registry, plugin_threads=2, max_abandoned_threads=2
    )
    mine = {"task_queue": task_queue}
    async with worker, httpx.AsyncClient(timeout=5.0) as http:

        async def scrape() -> str:
            response = await http.get(f"http://{bind}/metrics")
            response.raise_for_status()
            return response.text

        with capture_logs() as logs:
            await orchestrator.register_workflow(hung)
            await orchestrator.register_workflow(healthy)
            failed = await orchestrator.wait_for_completion(
                await orchestrator.execute_workflow(hung.workflow_id), 60
            )
            assert failed.status is Status.Failed
            text = await eventually(
                scrape, lambda text: value(text, SATURATED_METRIC, **mine) == 1, timeout=30
            )
            assert value(text, ABANDONED_THREADS_METRIC, **mine) == 2
            assert value(text, ABANDONED_ATTEMPTS_METRIC, kind="sync", **mine) == 2
            saturated = [line for line in logs if line["event"].startswith("worker saturated")]
            assert len(saturated) == 1
            assert saturated[0]["log_level"] == "error"

            release.set()  # the hung plugins return: their threads end
            await eventually(scrape, lambda text: value(text, SATURATED_METRIC, **mine) == 0)
            assert any(line["event"].startswith("worker no longer saturated") for line in logs)
        context = await orchestrator.wait_for_completion(
            await orchestrator.execute_workflow(healthy.workflow_id), 30
        )
        assert context.status is Status.Completed, context.error_messages
