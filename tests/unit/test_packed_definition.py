"""A start's ExecutionInput carries its definition zlib-compressed (pack_definition): it reads
back equal, inputs read back from history are written plain again (continue-as-new, shards),
the plain form recorded before still reads, and malformed or oversized packs are refused."""

from __future__ import annotations

import base64
import json
import zlib

import pytest
from pydantic import ValidationError

from engine.runtime.contracts import ExecutionInput
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
