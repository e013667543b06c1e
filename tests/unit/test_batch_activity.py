"""The batch activity (activities.batch) in the SDK's activity environment: per-item retries,
timeouts, output checks and errors, idempotency keys, and outcomes that fit one payload."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from temporalio.testing import ActivityEnvironment

from activities.node import NodeActivities
from engine.base.errors import PluginError, PluginErrorCode
from engine.language.options import NodeOptions, RetrySettings
from engine.runtime.contracts import MAX_PAYLOAD_BYTES, BatchItemInput, NodeBatchInput
from engine.temporal.blobs import LocalBlobStore, is_ref
from plugins import PluginContext, PluginRegistry


def _request(plugin_id: str, count: int, **options: Any) -> NodeBatchInput:
    return NodeBatchInput(
        execution_id="wf/run-1",
        workflow_id="wf",
        node_id="work",
        plugin_id=plugin_id,
        options=NodeOptions(**options),
        key="work",
        splitter="split",
        items=[BatchItemInput(index=10 + i, inputs={"n": i}) for i in range(count)],
        concurrency=4,
    )


def _activities(tmp_path: Path, seen: list[tuple[int, int, str]]) -> NodeActivities:
    registry = PluginRegistry()

    @registry.plugin("mixed")
    async def mixed(inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext) -> Any:
        n = inputs["n"]
        seen.append((n, ctx.attempt, ctx.idempotency_key))
        if n == 1 and ctx.attempt == 1:
            raise ConnectionError("flaky once")
        if n == 2:
            raise PluginError(PluginErrorCode.InvalidConfiguration, "never")
        if n == 3:
            raise ValueError("always")
        if n == 4:
            return {"value": {1, 2}}  # not JSON
        if n == 5:
            await asyncio.sleep(30)
        return {"n": n}

    @registry.plugin("big")
    async def big(inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext) -> Any:
        return {"text": "x" * 240_000}

    return NodeActivities(registry, blobs=LocalBlobStore(tmp_path / "blobs"))


async def test_each_item_gets_its_own_retries_timeouts_checks_and_errors(tmp_path: Path) -> None:
    seen: list[tuple[int, int, str]] = []
    activities = _activities(tmp_path, seen)
    retry = RetrySettings(max_attempts=2, initial_interval=0.01)
    request = _request("mixed", 7, retry=retry, timeout=0.3)
    result = await ActivityEnvironment().run(activities.run_plugin_batch, request)
    assert result.attempts == [1, 2, 1, 2, 1, 2, 1]
    assert result.outputs[0] == {"n": 0}
    assert result.outputs[1] == {"n": 1}
    assert result.outputs[6] == {"n": 6}
    errors = {error.position: error for error in result.errors}
    assert sorted(errors) == [2, 3, 4, 5]
    assert all(result.outputs[position] is None for position in errors)
    assert (errors[2].error_type, errors[2].retryable) == ("InvalidConfiguration", False)
    assert (errors[3].error_type, errors[3].error, errors[3].retryable) == (
        "ValueError",
        "always",
        True,
    )
    assert errors[4].error_type == "InvalidOutput"
    assert "not JSON" in errors[4].error
    assert (errors[5].error_type, errors[5].error) == (
        "StartToCloseTimeout",
        "attempt timed out (StartToClose, 0.3s)",
    )
    # Each item's idempotency key is its unbatched activity's: <run id>/<node>[<splitter>:<i>].
    keys = {n: key for n, _, key in seen}
    assert keys[1].endswith("/work[split:11]")
    assert [attempt for n, attempt, _ in seen if n == 1] == [1, 2]


async def test_an_unknown_plugin_fails_every_item_for_good(tmp_path: Path) -> None:
    activities = _activities(tmp_path, [])
    result = await ActivityEnvironment().run(activities.run_plugin_batch, _request("nope", 3))
    assert result.outputs == [None, None, None]
    assert [error.error_type for error in result.errors] == ["PluginNotFound"] * 3
    assert not any(error.retryable for error in result.errors)
    assert "no plugin 'nope'" in result.errors[0].error


async def test_outcomes_too_large_together_move_to_the_blob_store(tmp_path: Path) -> None:
    activities = _activities(tmp_path, [])
    result = await ActivityEnvironment().run(activities.run_plugin_batch, _request("big", 8))
    assert len(result.model_dump_json()) <= MAX_PAYLOAD_BYTES
    moved = [output for output in result.outputs if output and is_ref(output["text"])]
    assert 0 < len(moved) < 8  # only as many as needed
    kept = [output for output in result.outputs if output and not is_ref(output["text"])]
    assert all(output["text"] == "x" * 240_000 for output in kept)
    assert len(kept) + len(moved) == 8
