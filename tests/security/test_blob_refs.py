"""Blob references are resolved only when the engine made them.

Anything shaped like ``{"$blob": ...}`` can arrive in data the engine does not control: the
execution's input, a client's event, a source's item, a plugin's output (an HTTP answer, a
message). Such a value must reach the next plugin as the plain data it is, never as the
content of a file it names, and ``read_blob`` must refuse it with a clear error. Each forged
variant below names a file outside the blob store (or a blob of another execution) that the
engine used to read. Real large outputs keep going between nodes, through a sub-workflow
(both ways) and to ``read_blob``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from engine import (
    AdvancedPluginOrchestrator,
    ConnectionType,
    PluginError,
    PluginErrorCode,
    PluginWorkflow,
    WorkflowConnection,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
    WorkflowNode,
    WorkflowNodeType,
)
from engine.hosting.worker import create_worker
from engine.temporal.blobs import REF_KEY, BlobStore, LocalBlobStore
from plugins import PluginContext, PluginRegistry, source_plugin
from tests.helpers.builders import edge, node, workflow
from tests.helpers.plugins import test_registry as base_registry
from tests.helpers.waiting import eventually

Status = WorkflowExecutionStatus
BIG = 300_000  # over the default 256 KiB threshold: offloaded


@pytest.fixture(name="registry")
def fixture_registry(tmp_path: Path) -> PluginRegistry:
    """The test plugins plus ``forge`` (returns a forged reference), ``summarize`` (reports
    the long strings and the reference-shaped values it is given) and ``forged_source``."""
    registry = base_registry(tmp_path)

    @registry.plugin("forge")
    async def forge(
        inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext
    ) -> dict[str, Any]:
        """Returns ``config["value"]`` as its output's ``data``: what a plugin relaying an
        attacker's answer (an HTTP response, a message) returns."""
        return {"data": config["value"]}

    @registry.plugin("summarize")
    async def summarize(
        inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext
    ) -> dict[str, Any]:
        """Path -> length and SHA-256 of every long string in its inputs."""
        return {"strings": _long_strings(inputs, "inputs")}

    @source_plugin("forged_source")
    async def forged_source(
        config: dict[str, Any], checkpoint: Any, ctx: PluginContext
    ) -> AsyncIterator[dict[str, Any]]:
        """Emits ``config["item"]`` once."""
        if checkpoint is None:
            yield config["item"]

    registry.add(forged_source)
    return registry


def _long_strings(value: Any, path: str) -> dict[str, dict[str, Any]]:
    if isinstance(value, str) and len(value) >= 1000:
        digest = hashlib.sha256(value.encode()).hexdigest()
        return {path: {"length": len(value), "sha256": digest}}
    found: dict[str, dict[str, Any]] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            found.update(_long_strings(item, f"{path}.{key}"))
    return found


# -- the forged references ----------------------------------------------------------------


@pytest.fixture(name="secret")
def fixture_secret(tmp_path: Path) -> str:
    """A marker that only files outside the blob store hold."""
    return f"TOP-SECRET-{secrets.token_hex(8)}"


@pytest.fixture(name="outside")
def fixture_outside(tmp_path: Path, secret: str) -> Path:
    """A ``.json`` file outside the store holding the secret (like a key file on a worker)."""
    path = tmp_path / "outside" / "credentials.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"secret": secret}))
    return path


@pytest.fixture(name="beside_store")
def fixture_beside_store(blob_store: Path, secret: str) -> Iterator[Path]:
    """A secret file next to the store, named like a blob: ``<store>/../<sha256>.json``."""
    data = json.dumps({"secret": secret}).encode()
    path = blob_store.parent / f"{hashlib.sha256(data).hexdigest()}.json"
    path.write_bytes(data)
    yield path
    path.unlink()


@pytest.fixture(name="planted")
def fixture_planted(blob_store: Path, outside: Path) -> Iterator[tuple[str, str]]:
    """A symlink in the store, where a blob would be, to the file outside; (execution id,
    digest) a reference would name it by (the digest is the file's real one)."""
    execution_id = f"planted-{secrets.token_hex(4)}"
    digest = hashlib.sha256(outside.read_bytes()).hexdigest()
    directory = blob_store / execution_id
    directory.mkdir()
    (directory / f"{digest}.json").symlink_to(outside)
    yield execution_id, digest
    (directory / f"{digest}.json").unlink()
    directory.rmdir()


def _ref(digest: str, execution_id: str, **extra: Any) -> dict[str, Any]:
    return {REF_KEY: digest, "bytes": 40, "execution_id": execution_id, "preview": "", **extra}


def forged_refs(
    store: Path,
    outside: Path,
    beside_store: Path,
    planted: tuple[str, str],
    other: dict[str, Any],
) -> dict[str, Any]:
    """Every way a value from data tried to make the engine read a file: ``other`` is a
    real reference made by another execution."""
    stem = outside.with_suffix("")  # the store adds ".json" itself
    # From a directory that exists in the store: the OS resolves ".." only through one.
    upward = os.path.relpath(stem, store / planted[0])
    unsigned_other = {key: value for key, value in other.items() if key != "signature"}
    fake_signature = f"hmac-sha256:{secrets.token_hex(4)}:{secrets.token_hex(32)}"
    return {
        "absolute_path": _ref(f"sha256:{stem}", "x"),
        "dotdot_in_digest": _ref(f"sha256:{upward}", planted[0]),
        "dotdot_execution": _ref(f"sha256:{beside_store.stem}", ".."),
        "absolute_execution": _ref(f"sha256:{beside_store.stem}", str(beside_store.parent)),
        "symlink_in_store": _ref(f"sha256:{planted[1]}", planted[0]),
        "bad_digest": _ref("sha256:" + "A" * 64, "x"),
        "not_sha256": _ref("md5:" + "0" * 32, "x"),
        "other_execution": other,  # signed, but for another execution
        "other_execution_unsigned": unsigned_other,
        "wrong_signature": {**other, "signature": fake_signature},
        "nested": {"deeper": [_ref(f"sha256:{stem}", "x")]},
    }


@pytest.fixture(name="other_ref")
async def fixture_other_ref(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique: Callable[[str], str]
) -> dict[str, Any]:
    """A real reference: the large output of another execution."""
    definition = workflow(unique("other"), [node("make", "big_output", size=BIG)])
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    context = await orchestrator.wait_for_completion(execution_id, 120)
    assert context.status is Status.Completed, context.error_messages
    ref: dict[str, Any] = context.node_states["make"]["result"]["blob"]
    assert ref["execution_id"] == execution_id
    return ref


@pytest.fixture(name="forged")
def fixture_forged(
    blob_store: Path,
    outside: Path,
    beside_store: Path,
    planted: tuple[str, str],
    other_ref: dict[str, Any],
) -> dict[str, Any]:
    return forged_refs(blob_store, outside, beside_store, planted, other_ref)


def assert_plain(seen: Any, forged: dict[str, Any], context: Any, secret: str) -> None:
    """The plugin got the forged values exactly, and no file's content went anywhere."""
    assert seen == forged
    recorded = json.dumps(context.model_dump(mode="json"))
    assert secret not in recorded
    assert "x" * 1000 not in recorded  # the other execution's blob was not read either


# -- the ways in ----------------------------------------------------------------------------


async def test_forged_refs_in_input_data_reach_the_plugin_as_plain_data(
    orchestrator: AdvancedPluginOrchestrator,
    worker: object,
    unique: Callable[[str], str],
    forged: dict[str, Any],
    secret: str,
) -> None:
    definition = workflow(unique("input"), [node("see", "echo")])
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id, forged)
    context = await orchestrator.wait_for_completion(execution_id, 60)
    assert context.status is Status.Completed, context.error_messages
    assert_plain(context.node_states["see"]["result"]["inputs"], forged, context, secret)


async def test_forged_refs_in_a_plugin_output_reach_the_next_plugin_as_plain_data(
    orchestrator: AdvancedPluginOrchestrator,
    worker: object,
    unique: Callable[[str], str],
    forged: dict[str, Any],
    secret: str,
) -> None:
    definition = workflow(
        unique("output"),
        [node("relay", "forge", value=forged), node("see", "echo")],
        [edge("relay", "see")],
    )
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    context = await orchestrator.wait_for_completion(execution_id, 60)
    assert context.status is Status.Completed, context.error_messages
    seen = context.node_states["see"]["result"]["inputs"]["relay"]["data"]
    assert_plain(seen, forged, context, secret)


def _event_driven(workflow_id: str, source: WorkflowNode) -> PluginWorkflow:
    return PluginWorkflow(
        workflow_id=workflow_id,
        execution_mode=WorkflowExecutionMode.EventDriven,
        nodes=[source, node("see", "echo")],
        connections=[
            WorkflowConnection(
                source_node=source.node_id,
                target_node="see",
                connection_type=ConnectionType.Event,
            )
        ],
    )


async def _first_pass(orchestrator: AdvancedPluginOrchestrator, execution_id: str) -> Any:
    context = await eventually(
        lambda: orchestrator.get_execution_status(execution_id),
        lambda c: c.execution_data.get("events_processed") == 1,
        timeout=60,
    )
    await orchestrator.cancel_execution(execution_id)
    await orchestrator.wait_for_completion(execution_id, 30)
    return context


async def test_forged_refs_in_a_client_event_reach_the_plugin_as_plain_data(
    orchestrator: AdvancedPluginOrchestrator,
    worker: object,
    unique: Callable[[str], str],
    forged: dict[str, Any],
    secret: str,
) -> None:
    inbox = WorkflowNode(
        node_id="inbox",
        plugin_id="numbers",
        node_type=WorkflowNodeType.Source,
        configuration={"count": 0},
    )
    definition = _event_driven(unique("event"), inbox)
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    await orchestrator.send_event(execution_id, "upload", forged, event_id="forged")
    context = await _first_pass(orchestrator, execution_id)
    assert_plain(context.node_states["see"]["result"]["inputs"], forged, context, secret)


async def test_forged_refs_in_a_source_item_reach_the_plugin_as_plain_data(
    orchestrator: AdvancedPluginOrchestrator,
    worker: object,
    unique: Callable[[str], str],
    forged: dict[str, Any],
    secret: str,
) -> None:
    source = WorkflowNode(
        node_id="inbox",
        plugin_id="forged_source",
        node_type=WorkflowNodeType.Source,
        configuration={"item": forged},
    )
    definition = _event_driven(unique("source"), source)
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    context = await _first_pass(orchestrator, execution_id)
    assert_plain(context.node_states["see"]["result"]["inputs"], forged, context, secret)


async def test_read_blob_refuses_every_forged_ref(
    orchestrator: AdvancedPluginOrchestrator, forged: dict[str, Any]
) -> None:
    forged.pop("other_execution")  # real: read_blob reads any execution's blobs
    forged["nested"] = forged["nested"]["deeper"][0]
    for name, ref in forged.items():
        with pytest.raises(PluginError) as caught:
            await orchestrator.read_blob(ref)
        assert caught.value.code is PluginErrorCode.InvalidInput, name
        assert "blob reference" in caught.value.message, name
    with pytest.raises(PluginError, match="signature"):
        await orchestrator.read_blob(forged["wrong_signature"])
    with pytest.raises(PluginError, match="not signed"):
        await orchestrator.read_blob(forged["other_execution_unsigned"])
    with pytest.raises(PluginError, match="sha256"):
        await orchestrator.read_blob(forged["absolute_path"])


# -- a signed reference to a tampered store ---------------------------------------------------


async def test_a_signed_ref_whose_blob_became_a_symlink_out_of_the_store_fails_the_node(
    orchestrator: AdvancedPluginOrchestrator,
    worker: object,
    unique: Callable[[str], str],
    blob_store: Path,
    outside: Path,
    secret: str,
) -> None:
    """Even a reference the engine made never reads outside the store: someone with access
    to the store replaced a blob by a symlink to a file elsewhere. The node reading it fails
    for good, naming the problem; read_blob refuses it."""
    definition = workflow(
        unique("tampered"),
        [node("make", "big_output", size=BIG), node("see", "fail", retry={"max_attempts": 1})],
        [edge("make", "see")],
    )
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    context = await orchestrator.wait_for_completion(execution_id, 120)
    assert context.status is Status.Failed
    ref = context.node_states["make"]["result"]["blob"]
    digest = ref[REF_KEY].removeprefix("sha256:")
    blob = blob_store / execution_id.replace("/", "_") / f"{digest}.json"
    blob.unlink()
    blob.symlink_to(outside)

    # The retry keeps make's result (the signed reference) and runs see again.
    await orchestrator.retry_execution(execution_id)
    context = await eventually(
        lambda: orchestrator.get_execution_status(execution_id),
        lambda c: (
            c.status is Status.Failed and c.node_states["see"]["error"]["type"] != "ValueError"
        ),
        timeout=60,
    )
    error = context.node_states["see"]["error"]
    assert error["type"] == "BlobIntegrityError"
    assert "outside the blob store" in error["message"]
    assert error["attempts"] == 1  # not retried within the run
    assert context.node_states["see"]["attempts"] == 2  # one in the first run, one in the retry
    assert secret not in json.dumps(context.model_dump(mode="json"))

    with pytest.raises(PluginError) as caught:
        await orchestrator.read_blob(ref)
    assert caught.value.code is PluginErrorCode.InvalidState
    assert "outside the blob store" in caught.value.message
    assert secret not in caught.value.message


async def test_a_signed_ref_whose_blob_was_rewritten_is_refused(
    orchestrator: AdvancedPluginOrchestrator,
    worker: object,
    unique: Callable[[str], str],
    blob_store: Path,
) -> None:
    definition = workflow(unique("rewritten"), [node("make", "big_output", size=BIG)])
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    context = await orchestrator.wait_for_completion(execution_id, 120)
    ref = context.node_states["make"]["result"]["blob"]
    digest = ref[REF_KEY].removeprefix("sha256:")
    blob = blob_store / execution_id.replace("/", "_") / f"{digest}.json"
    blob.write_text(json.dumps("y" * BIG))  # same size, other content
    with pytest.raises(PluginError) as caught:
        await orchestrator.read_blob(ref)
    assert caught.value.code is PluginErrorCode.InvalidState
    assert "does not match its digest" in caught.value.message


# -- real references keep working ---------------------------------------------------------------


async def test_large_outputs_go_between_nodes_and_through_a_subworkflow_both_ways(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique: Callable[[str], str]
) -> None:
    """parent: make -> inner (child: take, make) -> check. The child's take resolves the
    parent's reference, the parent's check the child's; read_blob reads both."""
    child = workflow(
        unique("child"), [node("take", "summarize"), node("make", "big_output", size=BIG + 1)]
    )
    await orchestrator.register_workflow(child)
    parent = workflow(
        unique("parent"),
        [
            node("make", "big_output", size=BIG),
            node("inner", "subworkflow", workflow_id=child.workflow_id),
            node("check", "summarize"),
        ],
        [edge("make", "inner"), edge("inner", "check")],
    )
    await orchestrator.register_workflow(parent)
    execution_id = await orchestrator.execute_workflow(parent.workflow_id)
    context = await orchestrator.wait_for_completion(execution_id, 180)
    assert context.status is Status.Completed, context.error_messages

    def seen(size: int) -> dict[str, Any]:
        return {"length": size, "sha256": hashlib.sha256(b"x" * size).hexdigest()}

    inner = context.node_states["inner"]["result"]
    assert inner["execution_id"] == f"{execution_id}/inner"
    # In the child: the parent's reference, resolved.
    assert inner["results"]["take"]["strings"] == {"inputs.make.blob": seen(BIG)}
    # In the parent: the child's reference, resolved.
    assert context.node_states["check"]["result"]["strings"] == {
        "inputs.inner.results.make.blob": seen(BIG + 1)
    }
    parent_ref = context.node_states["make"]["result"]["blob"]
    child_ref = inner["results"]["make"]["blob"]
    assert parent_ref["execution_id"] == execution_id
    assert child_ref["execution_id"] == f"{execution_id}/inner"
    assert await orchestrator.read_blob(parent_ref) == "x" * BIG
    assert await orchestrator.read_blob(child_ref) == "x" * (BIG + 1)


# -- references made before signing -------------------------------------------------------------


async def _legacy_run(
    orchestrator: AdvancedPluginOrchestrator,
    client: Client,
    registry: PluginRegistry,
    store: BlobStore | None,
    workflow_id: str,
) -> Any:
    """A run with an unsigned reference to a blob of its own in flight (as at the upgrade):
    make -> gate (fails) -> see; gate is then completed with the reference, minus its
    signature, and the run retried on a worker with ``store``."""
    definition = workflow(
        workflow_id,
        [
            node("make", "big_output", size=BIG),
            node("gate", "fail", retry={"max_attempts": 1}),
            node("see", "summarize"),
        ],
        [edge("make", "gate"), edge("gate", "see")],
    )
    await orchestrator.register_workflow(definition)
    async with create_worker(
        client,
        task_queue=orchestrator.task_queue,
        plugins=registry,
        blob_store=store,
        max_cached_workflows=0,
        graceful_shutdown=5.0,
    ):
        execution_id = await orchestrator.execute_workflow(definition.workflow_id)
        failed = await orchestrator.wait_for_completion(execution_id, 120)
        assert failed.status is Status.Failed
        signed = failed.node_states["make"]["result"]["blob"]
        legacy = {key: value for key, value in signed.items() if key != "signature"}
        await orchestrator.skip_node(execution_id, "gate", {"made": legacy})
        context = await eventually(
            lambda: orchestrator.get_execution_status(execution_id),
            lambda c: (
                c.status is not Status.Running and "see" in c.execution_data.get("results", {})
            ),
            timeout=120,
        )
    return legacy, context


async def test_unsigned_references_resolve_only_with_the_transition_switch(
    orchestrator: AdvancedPluginOrchestrator,
    client: Client,
    registry: PluginRegistry,
    unique: Callable[[str], str],
    blob_store: Path,
) -> None:
    legacy, refused = await _legacy_run(orchestrator, client, registry, None, unique("legacy"))
    assert refused.status is Status.Completed, refused.error_messages
    assert refused.execution_data["results"]["see"] == {"strings": {}}  # plain data

    accepting = LocalBlobStore(blob_store, accept_unsigned=True)
    legacy, accepted = await _legacy_run(
        orchestrator, client, registry, accepting, unique("legacy-accepted")
    )
    assert accepted.status is Status.Completed, accepted.error_messages
    assert accepted.execution_data["results"]["see"] == {
        "strings": {
            "inputs.gate.made": {
                "length": BIG,
                "sha256": hashlib.sha256(b"x" * BIG).hexdigest(),
            }
        }
    }
    # read_blob in a client without the switch refuses it, naming the switch.
    with pytest.raises(PluginError, match="ORCHESTRATOR_BLOB_UNSIGNED_REFS=accept"):
        await orchestrator.read_blob(legacy)


# -- the key's configuration ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"ORCHESTRATOR_BLOB_STORE": "s3://bucket/runs"}, "needs ORCHESTRATOR_BLOB_KEY"),
        ({"ORCHESTRATOR_BLOB_KEY": "c2hvcnQ="}, "ORCHESTRATOR_BLOB_KEY holds 5 bytes"),
    ],
)
def test_the_cli_names_a_wrong_key_setting_without_a_traceback(
    dev_server: Any, tmp_path: Path, settings: dict[str, str], message: str
) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ORCHESTRATOR_")}
    env.update(settings, ORCHESTRATOR_DATA_DIR=str(tmp_path / "data"))
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli", "--address", dev_server.address, "blobs-gc"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "error: InvalidConfiguration:" in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
