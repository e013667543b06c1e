"""The graph fuzzer without a server: every generated definition is valid, and the pure
interpreter agrees with the fuzzer's reference model on each of them. The same definitions
then run for real in test_chaos.py and bench/chaos_soak.py."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest

from engine import validate_workflow
from engine.language.validation import compile_workflow
from engine.runtime.contracts import ExecutionOutcome
from engine.runtime.interpreter import Interpreter, NodeCall, NodeSuccess
from tests.chaos.fuzz import MODES, expected_run, random_definition
from tests.chaos.invariants import outcome_problems

SEEDS = range(300)


async def _effect(call: NodeCall) -> NodeSuccess:
    """What the ``effect`` plugin returns, minus the worker's process id."""
    summary = {
        key: value["node"] if isinstance(value, dict) and "node" in value else value
        for key, value in call.inputs.items()
    }
    output: dict[str, Any] = {**call.config["emit"], "node": call.node_id, "inputs": summary}
    return NodeSuccess(output, attempts=1)


@pytest.mark.parametrize("chunk", range(3))
async def test_interpreter_matches_the_reference_model(chunk: int) -> None:
    modes = set()
    for seed in SEEDS[chunk::3]:
        definition = random_definition(random.Random(seed), f"fuzz-{seed}")
        validate_workflow(definition)  # raises if the fuzzer made an invalid definition
        modes.add(definition.execution_mode)
        input_data = {"graph": seed}
        interpreter = Interpreter(
            compile_workflow(definition),
            execution_id=f"fuzz-{seed}/run-1",
            input_data=input_data,
            runner=_effect,
            clock=lambda: datetime(2024, 1, 1, tzinfo=UTC),
        )
        await interpreter.run()
        outcome = ExecutionOutcome(
            context=interpreter.context(), events=interpreter.stored_events()
        )
        problems = outcome_problems(outcome, expected_run(definition, input_data))
        assert problems == [], f"seed {seed}: {problems}\n{definition.model_dump_json()}"
    assert modes == set(MODES)
