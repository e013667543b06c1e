"""Executions on the real server: modes, data, conditions, retries, timeouts, bad output."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import Client

from engine import (
    AdvancedPluginOrchestrator,
    PluginError,
    PluginErrorCode,
    PluginWorkflow,
    WorkflowExecutionContext,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
    WorkflowNode,
    WorkflowNodeType,
)
from engine.hosting.worker import create_worker
from plugins import PluginRegistry
from tests.helpers.builders import chain, edge, node, workflow
from tests.helpers.plugins import read_count

Status = WorkflowExecutionStatus
Mode = WorkflowExecutionMode
Code = PluginErrorCode


async def _run(
    orchestrator: AdvancedPluginOrchestrator,
    definition: PluginWorkflow,
    input_data: dict[str, object] | None = None,
    timeout: float = 60,
) -> WorkflowExecutionContext:
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id, input_data)
    return await orchestrator.wait_for_completion(execution_id, timeout=timeout)


@pytest.mark.parametrize("mode", [Mode.Sequential, Mode.Parallel, Mode.Conditional])
async def test_each_batch_mode_runs_a_diamond(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, mode: Mode
) -> None:
    definition = workflow(
        unique(f"diamond-{mode.value}"),
        [node("top"), node("left"), node("right"), node("join")],
        [
            edge("top", "left"),
            edge("top", "right"),
            edge("left", "join", target_port="l"),
            edge("right", "join", target_port="r"),
        ],
        mode=mode,
    )
    context = await _run(orchestrator, definition, {"seed": 1})
    assert context.status is Status.Completed, context.error_messages
    assert context.progress == 1.0
    join = context.execution_data["results"]["join"]
    assert join["inputs"]["l"]["inputs"]["top"]["inputs"] == {"seed": 1}
    assert set(join["inputs"]) == {"l", "r"}
    assert context.execution_data["workflow_version"] == 1
    assert context.start_time is not None
    assert context.end_time is not None
    assert all(s["status"] == "completed" for s in context.node_states.values())
    started = {n: s["started_at"] for n, s in context.node_states.items()}
    if mode is Mode.Sequential:
        assert started["top"] < started["left"] < started["right"] < started["join"]


async def test_parallel_nodes_overlap(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    nodes = [node(f"s{i}", "sleep", seconds=1.0) for i in range(4)]
    started = asyncio.get_running_loop().time()
    context = await _run(orchestrator, workflow(unique("par"), nodes))
    assert context.status is Status.Completed
    assert asyncio.get_running_loop().time() - started < 3.5  # not 4 x 1 s in a row


async def test_spec_event_example_routes_valid_and_invalid_files(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, tmp_path: Path
) -> None:
    """The spec's file-validation graph (as a Conditional batch run per file)."""
    valid = tmp_path / "good.csv"
    valid.write_text("name,amount\nada,3\nbob,4\n")
    invalid = tmp_path / "bad.csv"
    invalid.write_text("name,amount\nada,3,extra\n")
    reports = tmp_path / "reports"
    definition = PluginWorkflow(
        workflow_id=unique("event-example"),
        execution_mode=Mode.Conditional,
        nodes=[
            WorkflowNode(
                node_id="file_validator",
                plugin_id="file_validator",
                node_type=WorkflowNodeType.Decision,
                configuration={"extensions": [".csv"], "required_columns": ["name", "amount"]},
            ),
            WorkflowNode(
                node_id="process_valid_file",
                plugin_id="csv_processor",
                node_type=WorkflowNodeType.Processor,
            ),
            WorkflowNode(
                node_id="handle_invalid_file",
                plugin_id="error_handler",
                node_type=WorkflowNodeType.Processor,
                configuration={"report_dir": str(reports), "reason": "invalid csv"},
            ),
        ],
        connections=[
            edge("file_validator", "process_valid_file", condition="file_valid == true"),
            edge("file_validator", "handle_invalid_file", condition="file_valid == false"),
        ],
    )
    await orchestrator.register_workflow(definition)
    good = await orchestrator.wait_for_completion(
        await orchestrator.execute_workflow(definition.workflow_id, {"path": str(valid)}), 60
    )
    bad = await orchestrator.wait_for_completion(
        await orchestrator.execute_workflow(definition.workflow_id, {"path": str(invalid)}), 60
    )
    assert good.status is Status.Completed
    assert bad.status is Status.Completed
    assert good.node_states["handle_invalid_file"]["status"] == "skipped"
    summary = good.execution_data["results"]["process_valid_file"]
    assert summary["rows"] == 2
    assert summary["numeric"]["amount"]["sum"] == 7
    assert bad.node_states["process_valid_file"]["status"] == "skipped"
    report = bad.execution_data["results"]["handle_invalid_file"]
    assert Path(report["report_path"]).exists()


async def test_retries_then_success_records_attempts(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    definition = workflow(
        unique("flaky"),
        [node("f", "flaky", succeed_on=3, retry={"initial_interval": 0.1, "max_attempts": 3})],
    )
    context = await _run(orchestrator, definition)
    assert context.status is Status.Completed
    assert context.node_states["f"]["attempts"] == 3
    assert context.node_states["f"]["result"] == {"attempt": 3}


async def test_exhausted_retries_fail_the_run_and_stop_the_rest(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, tmp_path: Path
) -> None:
    definition = workflow(
        unique("fails"),
        [node("bad", "fail", message="disk full"), node("after", "count")],
        [edge("bad", "after")],
        retry={"initial_interval": 0.1, "maximum_interval": 0.2, "max_attempts": 3},
    )
    context = await _run(orchestrator, definition)
    assert context.status is Status.Failed
    assert context.error_messages == [
        "node 'bad' (plugin 'fail') failed after 3 attempts: ValueError: disk full"
    ]
    assert context.node_states["bad"]["error"]["attempts"] == 3
    assert context.node_states["after"]["status"] == "cancelled"
    assert read_count(tmp_path, "after") == 0


async def test_non_retryable_errors_stop_at_the_first_attempt(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    definition = workflow(
        unique("nonretry"),
        [node("bad", "fail", retry={"non_retryable_errors": ["ValueError"], "max_attempts": 5})],
    )
    context = await _run(orchestrator, definition)
    assert context.status is Status.Failed
    assert context.node_states["bad"]["attempts"] == 1


async def test_timeout_fails_the_attempt(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    definition = workflow(
        unique("timeout"),
        [
            node(
                "slow",
                "sleep",
                seconds=30,
                timeout=1,
                retry={"max_attempts": 2, "initial_interval": 0.1},
            )
        ],
    )
    context = await _run(orchestrator, definition)
    assert context.status is Status.Failed
    error = context.node_states["slow"]["error"]
    assert error["type"] == "StartToCloseTimeout"
    assert error["attempts"] == 2


@pytest.mark.parametrize(
    ("plugin", "config", "fragment"),
    [
        ("bad_output", {"kind": "set"}, "not JSON"),
        ("bad_output", {"kind": "list"}, "expected a JSON object"),
        ("bad_output", {"kind": "deep"}, "output.inner.inner"),
        ("bad_output", {"kind": "deep"}, "nests more than 64 levels deep"),
        ("bad_output", {"kind": "huge"}, "output.value"),
        ("bad_output", {"kind": "surrogate"}, "lone surrogate U+D800"),
    ],
)
async def test_bad_output_and_unknown_plugins_fail_once(
    orchestrator: AdvancedPluginOrchestrator,
    worker: object,
    unique,
    tmp_path: Path,
    plugin: str,
    config: dict[str, object],
    fragment: str,
) -> None:
    definition = workflow(
        unique("badout"), [node("n", plugin, **config, retry={"max_attempts": 5})]
    )
    context = await _run(orchestrator, definition)
    assert context.status is Status.Failed
    assert fragment in context.error_messages[0]
    assert "node 'n' (plugin 'bad_output')" in context.error_messages[0]
    assert context.node_states["n"]["error"]["type"] == "InvalidOutput"
    assert context.node_states["n"]["attempts"] == 1
    assert read_count(tmp_path, "n") == 1  # the plugin ran once, not once per attempt


async def test_unknown_plugins_are_refused_at_registration(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    definition = workflow(unique("unknown"), [node("n", "no_such_plugin")])
    with pytest.raises(PluginError) as info:
        await orchestrator.register_workflow(definition)
    assert info.value.code is Code.PluginNotFound
    assert "node 'n' uses plugin 'no_such_plugin'" in info.value.message


async def test_a_plugin_missing_from_the_worker_fails_once_at_run_time(
    client: Client, task_queue: str, registry: PluginRegistry, unique
) -> None:
    """The fleet changed after registration: the node fails once with PluginNotFound."""
    orchestrator = AdvancedPluginOrchestrator(client, task_queue=task_queue)
    definition = workflow(unique("gone"), [node("n", "echo", retry={"max_attempts": 5})])
    # The first fleet stops right after registering, as in a redeploy: now and then it has
    # taken the registry entity's first workflow task and drops it on the way out, and reads
    # of the entity wait for Temporal's 10 s task timeout (within the query timeout).
    async with create_worker(client, task_queue=task_queue, plugins=registry):
        await orchestrator.register_workflow(definition)
    async with create_worker(client, task_queue=task_queue, plugins=PluginRegistry()):
        execution_id = await orchestrator.execute_workflow(definition.workflow_id)
        context = await orchestrator.wait_for_completion(execution_id, 30)
    assert context.status is Status.Failed
    assert context.node_states["n"]["error"]["type"] == "PluginNotFound"
    assert context.node_states["n"]["attempts"] == 1
    assert "no plugin 'echo' is registered" in context.error_messages[0]


async def test_blocking_plugin_does_not_stall_heartbeats(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    strict = {"heartbeat_timeout": 1, "retry": {"max_attempts": 1}}
    definition = workflow(
        unique("block"),
        [
            node("blocking", "block", seconds=3, **strict),
            node("async", "sleep", seconds=3, **strict),
        ],
    )
    context = await _run(orchestrator, definition)
    assert context.status is Status.Completed, context.error_messages


async def test_execution_errors(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    empty = workflow(unique("empty"), [])
    await orchestrator.register_workflow(empty)
    with pytest.raises(PluginError) as info:
        await orchestrator.execute_workflow(empty.workflow_id)
    assert info.value.code is Code.InvalidWorkflowStructure
    ok = chain(unique("input"), 1)
    await orchestrator.register_workflow(ok)
    for bad in ({"x": float("nan")}, {"x": {1, 2}}, [1, 2]):
        with pytest.raises(PluginError) as info:
            await orchestrator.execute_workflow(ok.workflow_id, bad)  # type: ignore[arg-type]
        assert info.value.code is Code.InvalidInput


async def test_a_run_keeps_the_version_it_started_with(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    definition = workflow(unique("snapshot"), [node("a", "sleep", seconds=1.5)])
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    await orchestrator.add_node_to_workflow(definition.workflow_id, node("b"))
    context = await orchestrator.wait_for_completion(execution_id, 30)
    assert context.execution_data["workflow_version"] == 1
    assert set(context.node_states) == {"a"}
    later = await orchestrator.wait_for_completion(
        await orchestrator.execute_workflow(definition.workflow_id), 30
    )
    assert later.execution_data["workflow_version"] == 2
    assert set(later.node_states) == {"a", "b"}
