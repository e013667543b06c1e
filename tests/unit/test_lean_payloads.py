"""Smaller payloads in a run's history: a node activity's input in its lean form leaves out
node_name and an empty config or inputs; what the node activity of any version reads from it
is unchanged."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_json

from engine.runtime.contracts import NodeActivityInput, lean_node_request


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
