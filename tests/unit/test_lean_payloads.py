"""Smaller payloads in a run's history.

A start's ExecutionInput carries its definition zlib-compressed (pack_definition): it reads
back equal, inputs read back from history are written plain again (continue-as-new, shards),
the plain form recorded before still reads, and malformed or oversized packs are refused.

A node activity's input in its lean form (patch lean-node-input) leaves out node_name and an
empty config or inputs; what the node activity of any version reads from it is unchanged."""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import to_json

from engine.runtime.contracts import ExecutionInput, NodeActivityInput, lean_node_request
from tests.helpers.builders import chain


def _input() -> ExecutionInput:
    return ExecutionInput(workflow=chain("packed-def", 100, mode="sequential"), input_data={"x": 1})


def test_a_packed_definition_reads_back_equal_and_is_much_smaller() -> None:
    params = _input()
    plain = params.model_dump_json()
    packed = params.model_copy().pack_definition().model_dump_json()
    assert set(json.loads(packed)["workflow"]) == {"@zlib"}
    assert len(packed) * 4 < len(plain)
    reread = ExecutionInput.model_validate_json(packed)
    assert reread == params
    # What workflow code writes from an input it read (continue-as-new, shards) is plain.
    assert reread.model_dump_json() == plain
    assert reread.model_copy(update={"completed": {}}).model_dump_json() == plain


def test_the_plain_form_recorded_before_still_reads() -> None:
    params = _input()
    assert ExecutionInput.model_validate_json(params.model_dump_json()) == params


@pytest.mark.parametrize(
    "workflow",
    [
        {"@zlib": "not base64!"},
        {"@zlib": base64.b64encode(b"not zlib").decode()},
        {"@zlib": base64.b64encode(zlib.compress(b"[1, 2")).decode()},
        {"@zlib": base64.b64encode(zlib.compress(b"{}"))[:-4].decode()},
        {"@zlib": base64.b64encode(zlib.compress(b"{}")).decode(), "nodes": []},
        {"@zlib": 42},
        # A bomb: inflates past any definition's size.
        {"@zlib": base64.b64encode(zlib.compress(b" " * 5_000_000)).decode()},
    ],
)
def test_a_malformed_packed_definition_is_refused(workflow: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ExecutionInput.model_validate({"workflow": workflow})


class _NodeActivityInputBefore(BaseModel):
    """NodeActivityInput as workers before the lean form read it."""

    model_config = ConfigDict(extra="ignore")
    execution_id: str
    workflow_id: str
    node_id: str
    node_name: str = ""
    plugin_id: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)


_FIELDS: dict[str, Any] = {
    "execution_id": "wf/run-0123456789abcdef",
    "workflow_id": "wf",
    "node_id": "l10",
    "node_name": "l10",
    "plugin_id": "noop",
    "inputs": {"r": {"ok": True}},
    "config": {},
}


def test_a_request_written_before_the_patch_keeps_its_full_form() -> None:
    assert json.loads(NodeActivityInput(**_FIELDS).model_dump_json()) == _FIELDS


@pytest.mark.parametrize(
    ("changes", "left_out"),
    [
        ({}, {"node_name", "config"}),
        ({"inputs": {}}, {"node_name", "config", "inputs"}),
        ({"config": {"k": 1}, "node_name": ""}, {"node_name"}),
    ],
)
def test_a_lean_request_reads_the_same_on_workers_of_any_version(
    changes: dict[str, Any], left_out: set[str]
) -> None:
    fields = {**_FIELDS, **changes}
    full = NodeActivityInput(**fields)
    lean = lean_node_request(
        fields["execution_id"],
        fields["workflow_id"],
        fields["node_id"],
        fields["plugin_id"],
        fields["inputs"],
        fields["config"],
    )
    text = to_json(lean)  # what the data converter writes
    assert set(fields) - set(json.loads(text)) == left_out
    # The full form's JSON with those keys taken out, in the same order.
    expected = {k: v for k, v in json.loads(full.model_dump_json()).items() if k not in left_out}
    assert text == to_json(expected)
    for reader in (NodeActivityInput, _NodeActivityInputBefore):
        read = reader.model_validate_json(text)
        kept = {"execution_id", "workflow_id", "node_id", "plugin_id", "inputs", "config"}
        assert {name: getattr(read, name) for name in kept} == {
            name: getattr(full, name) for name in kept
        }
