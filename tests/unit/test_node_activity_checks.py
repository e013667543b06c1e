"""The node activity (activities.node) in the SDK's activity environment: small outputs are
checked on the event loop, large ones on a thread, with the same results; heartbeats beat
on a timer while a plugin runs and stop when it returns."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.node import SMALL_OUTPUT_CHARS, SMALL_OUTPUT_VALUES, NodeActivities, _small
from engine.runtime.contracts import NodeActivityInput
from engine.temporal.blobs import LocalBlobStore, is_ref
from plugins import PluginContext, PluginRegistry

_OUTPUTS: dict[str, Any] = {
    "small": {"ok": True, "n": [1, 2.5, None, "x"], "nested": {"a": {"b": "c"}}},
    "many": {"items": list(range(SMALL_OUTPUT_VALUES + 1))},
    "long": {"text": "y" * (SMALL_OUTPUT_CHARS + 1)},
    "offloaded": {"text": "z" * 300_000},
    "not-a-dict": [1, 2],
    "nan": {"value": math.nan},
    "set": {"value": {1, 2}},
    "many-bad": {"items": [*range(SMALL_OUTPUT_VALUES), {3}]},
}


def _activities(tmp_path: Path) -> NodeActivities:
    registry = PluginRegistry()

    @registry.plugin("emit")
    async def emit(inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext) -> Any:
        return _OUTPUTS[inputs["which"]]

    @registry.plugin("slow")
    async def slow(inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext) -> Any:
        await asyncio.sleep(0.45)
        return {"slept": True}

    return NodeActivities(registry, blobs=LocalBlobStore(tmp_path / "blobs"))


def _request(plugin_id: str, **inputs: Any) -> NodeActivityInput:
    return NodeActivityInput(
        execution_id="wf/run-1",
        workflow_id="wf",
        node_id="node",
        plugin_id=plugin_id,
        inputs=inputs,
        config={},
    )


def test_small_means_few_values_and_short_strings() -> None:
    assert _small(_OUTPUTS["small"])
    assert not _small(_OUTPUTS["many"])
    assert not _small(_OUTPUTS["long"])
    assert not _small(_OUTPUTS["set"])  # not JSON: the thread's check reports it
    assert not _small({1: "int key"})
    looped: dict[str, Any] = {}
    looped["self"] = looped
    assert not _small(looped)  # the budget ends the walk


@pytest.mark.parametrize("which", ["small", "many", "long"])
async def test_outputs_come_back_as_json_inline_or_not(tmp_path: Path, which: str) -> None:
    result = await ActivityEnvironment().run(
        _activities(tmp_path).run_plugin_node, _request("emit", which=which)
    )
    assert result.output == _OUTPUTS[which]
    assert result.attempt == 1


async def test_a_large_output_is_offloaded(tmp_path: Path) -> None:
    result = await ActivityEnvironment().run(
        _activities(tmp_path).run_plugin_node, _request("emit", which="offloaded")
    )
    assert is_ref(result.output["text"])


@pytest.mark.parametrize(
    ("which", "reason"),
    [
        ("not-a-dict", "returned list, expected a JSON object"),
        ("nan", "not JSON"),
        ("set", "not JSON"),
        ("many-bad", "not JSON"),
    ],
)
async def test_bad_outputs_fail_the_node_for_good(tmp_path: Path, which: str, reason: str) -> None:
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(
            _activities(tmp_path).run_plugin_node, _request("emit", which=which)
        )
    assert caught.value.type == "InvalidOutput"
    assert caught.value.non_retryable
    assert reason in caught.value.message


async def test_heartbeats_beat_while_the_plugin_runs_and_stop_after(tmp_path: Path) -> None:
    env = ActivityEnvironment()
    # A 0.3 s heartbeat timeout: a beat every 0.1 s.
    env.info = dataclasses.replace(env.info, heartbeat_timeout=timedelta(seconds=0.3))
    beats: list[tuple[Any, ...]] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    result = await env.run(_activities(tmp_path).run_plugin_node, _request("slow"))
    assert result.output == {"slept": True}
    assert 2 <= len(beats) <= 5
    after = len(beats)
    await asyncio.sleep(0.3)
    assert len(beats) == after  # the timer stopped with the attempt
