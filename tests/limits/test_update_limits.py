"""Temporal's cap on updates in flight, reached on purpose: a dev server that lets one update
per workflow be in flight (``history.maxInFlightUpdates=1``; 10 by default). Requests over
the cap are sent again until Temporal takes them (the SDK's client retries
``RESOURCE_EXHAUSTED`` first, then the engine, up to a deadline), or refused clearly: every
request gets its answer, none is lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from engine import AdvancedPluginOrchestrator, PluginError
from engine import WorkflowExecutionStatus as Status
from engine.hosting.connection import connect
from engine.hosting.devserver import DevServer
from engine.hosting.worker import create_worker
from tests.helpers import plugins
from tests.helpers.builders import edge, node, workflow
from tests.helpers.servers import configured_server
from tests.helpers.waiting import eventually
from tests.long_running.test_event_driven import _router


@pytest.fixture(name="one_update_server", scope="module")
def fixture_one_update_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    limits = {"history.maxInFlightUpdates": 1}
    with configured_server(tmp_path_factory.mktemp("temporal-updates"), **limits) as server:
        yield server


@pytest_asyncio.fixture(name="orch", loop_scope="session")
async def fixture_orch(
    one_update_server: DevServer, task_queue: str, tmp_path: Path
) -> AsyncIterator[AdvancedPluginOrchestrator]:
    client = await connect(one_update_server.address)
    async with create_worker(
        client, task_queue=task_queue, plugins=plugins.test_registry(tmp_path)
    ):
        yield AdvancedPluginOrchestrator(client, task_queue=task_queue, query_timeout=5.0)


async def test_a_burst_of_events_is_all_taken(
    orch: AdvancedPluginOrchestrator, unique: Any
) -> None:
    definition = _router(unique("burst"))
    await orch.register_workflow(definition)
    execution_id = await orch.execute_workflow(definition.workflow_id)
    sent = await asyncio.gather(
        *(orch.send_event(execution_id, "number", {"n": n}, event_id=f"e{n}") for n in range(30))
    )
    assert sorted(sent) == sorted(f"e{n}" for n in range(30))
    context = await eventually(
        lambda: orch.get_execution_status(execution_id),
        lambda c: c.execution_data.get("events_processed") == 30,
        timeout=120,
    )
    assert context.execution_data["events_received"] == 30
    await orch.cancel_execution(execution_id)


async def test_concurrent_control_requests_are_retried_not_lost(
    orch: AdvancedPluginOrchestrator, unique: Any
) -> None:
    definition = workflow(
        unique("control"),
        [node("slow", "sleep", seconds=3), node("after")],
        [edge("slow", "after")],
    )
    await orch.register_workflow(definition)
    execution_id = await orch.execute_workflow(definition.workflow_id)
    await eventually(
        lambda: orch.get_node_status(execution_id, "slow"), lambda s: s["status"] == "running"
    )

    async def attempt(action: str) -> str:
        try:
            await getattr(orch, f"{action}_execution")(execution_id)
        except PluginError as exc:
            # A refusal must say why: the state already changed (paused twice), nothing else.
            return exc.code.value
        return "done"

    results = await asyncio.gather(*(attempt("pause") for _ in range(8)))
    assert sorted(results) == ["InvalidState"] * 7 + ["done"]
    assert (await orch.get_execution_status(execution_id)).status is Status.Paused
    results = await asyncio.gather(*(attempt("resume") for _ in range(8)))
    assert sorted(results) == ["InvalidState"] * 7 + ["done"]
    context = await orch.wait_for_completion(execution_id, 60)
    assert context.status is Status.Completed
