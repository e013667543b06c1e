"""Hostile requests against the real dev server: every one is refused with the right code and a
message naming the problem; nothing is stored, nothing runs, and no process dies.

"Nothing stored" is checked twice: directly (describing the registry entity a refused
definition would have had) and through Temporal's visibility store, after a sentinel run
whose appearance in the listing shows that everything written before it is visible too.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from engine import (
    AdvancedPluginOrchestrator,
    PluginError,
    PluginErrorCode,
    PluginWorkflow,
    WorkflowExecutionStatus,
)
from engine.hosting.devserver import DevServer
from engine.language.conditions import MAX_CONDITION_COST
from engine.language.models import WorkflowConnection, WorkflowNode
from engine.language.validation import MAX_NODES
from engine.runtime.contracts import DEFINITION_WORKFLOW, EXECUTION_WORKFLOW, definition_entity_id
from engine.temporal.telemetry import ENTITY_DIVISION_CLAUSE
from tests.helpers.builders import chain, edge, node, workflow
from tests.helpers.waiting import eventually
from tests.hostile.budget import PEAK_BYTES
from tests.hostile.corpus import CONDITIONS, DEFINITIONS, cyclic, shared_bomb
from tests.hostile.test_hostile_definitions import materialize

Code = PluginErrorCode
Status = WorkflowExecutionStatus
# A refused request: validation, and for ids one round trip to the server on a loaded machine.
API_SECONDS = 10.0


async def refused(awaitable: Awaitable[Any]) -> PluginError:
    """The PluginError ``awaitable`` raises, within the time and memory budget. Memory is the
    growth of the process's peak RSS (tracemalloc cannot run here: stopping it while the
    SDK's threads allocate crashes CPython 3.11; the pure tests trace the same validation)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with pytest.raises(PluginError) as info:
        await asyncio.wait_for(awaitable, API_SECONDS)
    elapsed = time.perf_counter() - started
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) * 1024  # KiB on Linux
    assert elapsed < API_SECONDS, f"{elapsed:.2f} s"
    assert grown < PEAK_BYTES, f"peak RSS grew by {grown / 1e6:.1f} MB"
    assert len(info.value.message) < 4000, len(info.value.message)
    return info.value


async def expect(awaitable: Awaitable[Any], code: PluginErrorCode, message: str) -> None:
    """Refused with ``code`` and ``message`` in the message, within the budget."""
    error = await refused(awaitable)
    assert error.code is code, error
    assert message in error.message, error.message


async def stored(client: Client, task_queue: str) -> set[str]:
    """Every definition entity and execution of the task queue that visibility lists."""
    query = (
        f"TaskQueue = '{task_queue}' AND (WorkflowType = '{DEFINITION_WORKFLOW}' "
        f"OR WorkflowType = '{EXECUTION_WORKFLOW}') AND {ENTITY_DIVISION_CLAUSE}"
    )
    return {execution.id async for execution in client.list_workflows(query)}


async def nothing_else_stored(
    orchestrator: AdvancedPluginOrchestrator,
    client: Client,
    dev_server: DevServer,
    unique: Callable[[str], str],
    expected: set[str] = frozenset(),  # type: ignore[assignment]
) -> None:
    """Run a sentinel to completion (the worker and server still work), wait until the
    listing shows it, then check the listing holds nothing but ``expected`` and it."""
    sentinel = chain(unique("sentinel"), 1)
    await orchestrator.register_workflow(sentinel)
    execution_id = await orchestrator.execute_workflow(sentinel.workflow_id)
    final = await orchestrator.wait_for_completion(execution_id, 60)
    assert final.status is Status.Completed
    barrier = {execution_id, definition_entity_id(sentinel.workflow_id, orchestrator.task_queue)}
    listed = await eventually(
        lambda: stored(client, orchestrator.task_queue), lambda ids: barrier <= ids
    )
    assert listed - barrier == set(expected)
    assert dev_server.process is not None
    assert dev_server.process.poll() is None, "the dev server died"


def _load(value: Any) -> tuple[PluginWorkflow | None, PluginError | None]:
    """A corpus input as a PluginWorkflow, or the loader's refusal."""
    try:
        if isinstance(value, PluginWorkflow):
            return value, None
        if isinstance(value, str | bytes):
            return PluginWorkflow.from_json_text(value), None
        return PluginWorkflow.from_json(value), None
    except PluginError as exc:
        return None, exc


async def not_registered(client: Client, workflow_id: str, task_queue: str) -> bool:
    try:
        await client.get_workflow_handle(definition_entity_id(workflow_id, task_queue)).describe()
    except RPCError as exc:
        return exc.status is RPCStatusCode.NOT_FOUND
    return False


# -- definitions ---------------------------------------------------------------------------------


async def test_hostile_definitions_are_refused_and_nothing_is_stored(
    orchestrator: AdvancedPluginOrchestrator,
    client: Client,
    dev_server: DevServer,
    worker: object,
    unique: Callable[[str], str],
) -> None:
    reached_the_api = 0
    for case in DEFINITIONS:
        loaded, error = _load(materialize(case))
        if loaded is not None:
            reached_the_api += 1
            error = await refused(orchestrator.register_workflow(loaded))
        # else refused by the loader: it never reaches the API.
        assert error is not None, case.id
        assert error.code is case.code, (case.id, error)
        assert case.message in error.message, (case.id, error.message)
    for case in CONDITIONS:
        if case.variables is not None or case.build is not None:
            continue
        reached_the_api += 1
        definition = workflow(
            unique("cond"), [node("a"), node("b")], [edge("a", "b", condition="true")]
        )
        definition.connections[0].properties = {"condition": case.text}
        error = await refused(orchestrator.register_workflow(definition))
        assert error.code is Code.InvalidConnection, (case.id, error)
        assert case.message in error.message, (case.id, error.message)
    assert reached_the_api >= 60
    for workflow_id in ("hostile", "w", "hostile-condition"):
        assert await not_registered(client, workflow_id, orchestrator.task_queue)
    await nothing_else_stored(orchestrator, client, dev_server, unique)


async def test_refused_modifications_change_nothing(
    orchestrator: AdvancedPluginOrchestrator,
    client: Client,
    dev_server: DevServer,
    worker: object,
    unique: Callable[[str], str],
) -> None:
    definition = chain(unique("modify"), 3)
    await orchestrator.register_workflow(definition)
    wid = definition.workflow_id
    back = WorkflowConnection(source_node="n2", target_node="n0")
    await expect(
        orchestrator.add_connection_to_workflow(wid, back),
        Code.CircularDependency,
        "circular dependency: n0 -> n1 -> n2 -> n0",
    )
    event_back = WorkflowConnection(source_node="n2", target_node="n1", connection_type="event")
    await expect(
        orchestrator.add_connection_to_workflow(wid, event_back),
        Code.ExecutionModeNotSupported,
        "only EventDriven mode routes",
    )
    await expect(
        orchestrator.add_node_to_workflow(wid, node("n1")),
        Code.InvalidWorkflowStructure,
        f"workflow '{wid}' already has a node 'n1'",
    )
    await expect(
        orchestrator.add_node_to_workflow(wid, node("x", limit=float("nan"))),
        Code.InvalidWorkflowStructure,
        "configuration.limit is nan",
    )
    await expect(
        orchestrator.add_node_to_workflow(wid, node("\u0430")),
        Code.InvalidWorkflowStructure,
        "may only contain ASCII",
    )
    hostile_condition = WorkflowConnection(
        source_node="n0",
        target_node="n2",
        connection_type="control",
        properties={"condition": "__import__('os').system('id') == 0"},
    )
    await expect(
        orchestrator.add_connection_to_workflow(wid, hostile_condition),
        Code.InvalidConnection,
        "reserved name '__import__'",
    )
    await expect(
        orchestrator.remove_node_from_workflow(wid, "ghost"),
        Code.NodeNotFound,
        f"workflow '{wid}' has no node 'ghost'",
    )
    oversize = definition.model_copy(deep=True)
    oversize.nodes = [WorkflowNode(node_id=f"n{i}", plugin_id="echo") for i in range(MAX_NODES + 1)]
    oversize.connections = []
    await expect(
        orchestrator.update_workflow(oversize),
        Code.InvalidWorkflowStructure,
        f"{MAX_NODES + 1} nodes; the limit is {MAX_NODES}",
    )
    current = await orchestrator.get_workflow(wid)
    assert current.version == 1
    assert current.model_copy(update={"version": 0}) == definition
    await expect(
        orchestrator.register_workflow(definition),
        Code.WorkflowAlreadyExists,
        f"workflow '{wid}' is already registered",
    )
    await nothing_else_stored(
        orchestrator,
        client,
        dev_server,
        unique,
        {definition_entity_id(wid, orchestrator.task_queue)},
    )


# -- ids -----------------------------------------------------------------------------------------

UNKNOWN_EXECUTIONS = [
    ("nope/run-0123456789abcdef", "execution 'nope/run-0123456789abcdef' does not exist"),
    ("", "no execution '': not a valid execution id"),
    ("x" * 1001, "not a valid execution id"),  # over Temporal's 1,000-byte id limit
    ("\u20ac" * 400, "does not exist"),  # 400 characters, 1,200 bytes
    ("a\x00b", "does not exist"),
    ("a\nb/run-1", "does not exist"),
    ("../../etc/passwd", "execution '../../etc/passwd' does not exist"),
]

UNKNOWN_WORKFLOWS = [
    ("nope", "workflow 'nope' is not registered"),
    ("w" * 129, "is longer than 128 characters"),
    ("a/b", "workflow_id 'a/b' may only contain ASCII"),
    ("a\x00b", "may only contain ASCII"),
    ("caf\u00e9", "may only contain ASCII"),
    ("", "workflow_id is empty"),
]


async def test_unknown_and_hostile_ids_are_refused(
    orchestrator: AdvancedPluginOrchestrator,
    client: Client,
    dev_server: DevServer,
    worker: object,
    unique: Callable[[str], str],
) -> None:
    o = orchestrator
    for execution_id, message in UNKNOWN_EXECUTIONS:
        for call in (
            o.get_execution_status,
            o.cancel_execution,
            o.pause_execution,
            o.resume_execution,
            o.retry_execution,
            o.get_execution_definition,
            lambda e: o.wait_for_completion(e, 5),
            lambda e: o.get_node_status(e, "a"),
            lambda e: o.send_event(e, "tick", {}),
        ):
            await expect(call(execution_id), Code.ExecutionNotFound, message)
        with pytest.raises(PluginError) as info:
            async for _ in o.events(execution_id):
                pass
        assert info.value.code is Code.ExecutionNotFound
    for workflow_id, message in UNKNOWN_WORKFLOWS:
        for call in (
            o.get_workflow,
            o.execute_workflow,
            o.unregister_workflow,
            lambda w: o.remove_node_from_workflow(w, "a"),
            lambda w: o.add_node_to_workflow(w, node("a")),
        ):
            await expect(call(workflow_id), Code.WorkflowNotFound, message)
    with pytest.raises(PluginError) as info:
        AdvancedPluginOrchestrator(client, task_queue="queue' OR '1'='1")
    assert info.value.code is Code.InvalidConfiguration
    assert "without quotes" in info.value.message
    await nothing_else_stored(o, client, dev_server, unique)


# -- executions ----------------------------------------------------------------------------------


async def test_control_calls_in_the_wrong_state_are_refused(
    orchestrator: AdvancedPluginOrchestrator,
    client: Client,
    dev_server: DevServer,
    worker: object,
    unique: Callable[[str], str],
) -> None:
    o = orchestrator
    slow = chain(unique("slow"), 2)
    slow.nodes = [node("n0", "sleep", seconds=30.0), node("n1")]
    quick = chain(unique("quick"), 1)
    for definition in (slow, quick):
        await o.register_workflow(definition)

    running = await o.execute_workflow(slow.workflow_id)
    await eventually(lambda: o.get_node_status(running, "n0"), lambda s: s["status"] == "running")
    await expect(o.resume_execution(running), Code.InvalidState, "it is running")
    await expect(
        o.send_event(running, "tick", {}), Code.InvalidState, "events go to running EventDriven"
    )
    await expect(o.retry_execution(running), Code.InvalidState, "only failed or cancelled")
    await expect(o.get_node_status(running, "ghost"), Code.NodeNotFound, "has no node 'ghost'")
    # Cancelling twice while the first request is in flight is harmless (Temporal keeps one
    # request); once the run has ended, cancel is refused.
    await o.cancel_execution(running)
    await o.cancel_execution(running)
    final = await o.wait_for_completion(running, 30)
    assert final.status is Status.Cancelled
    await expect(o.cancel_execution(running), Code.InvalidState, "it has already ended")
    await expect(o.pause_execution(running), Code.InvalidState, "cannot pause")
    await expect(o.resume_execution(running), Code.InvalidState, "cannot resume")

    finished = await o.execute_workflow(quick.workflow_id)
    assert (await o.wait_for_completion(finished, 30)).status is Status.Completed
    await expect(o.pause_execution(finished), Code.InvalidState, "it has ended (completed)")
    await expect(o.resume_execution(finished), Code.InvalidState, "it has ended (completed)")
    await expect(o.cancel_execution(finished), Code.InvalidState, "it has already ended")
    await expect(o.retry_execution(finished), Code.InvalidState, "only failed or cancelled")
    await expect(
        o.send_event(finished, "tick", {}), Code.InvalidState, "events go to running EventDriven"
    )
    await expect(
        o.approve_node(finished, "n0"), Code.InvalidState, f"cannot approve execution '{finished}'"
    )
    await nothing_else_stored(
        o,
        client,
        dev_server,
        unique,
        {
            running,
            finished,
            definition_entity_id(slow.workflow_id, o.task_queue),
            definition_entity_id(quick.workflow_id, o.task_queue),
        },
    )


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


BAD_INPUTS: list[tuple[str, Any, str]] = [
    ("list", [1, 2], "input_data must be a JSON object, got list"),
    ("string", "go", "input_data must be a JSON object, got str"),
    ("number", 7, "input_data must be a JSON object, got int"),
    ("too-large", {"blob": "x" * 600_000}, "the limit is 500,000"),
    ("nan", {"x": float("nan")}, "input_data.x is nan, which is not a JSON number"),
    ("set", {"x": {1, 2}}, "input_data.x is of type set, which JSON does not have"),
    ("int-keys", {"x": {1: 2}}, "input_data.x has the key 1 of type int"),
    ("tuple", {"x": (1, 2)}, "input_data.x is a tuple; JSON has lists"),
    ("5000-digit-int", {"x": 10**5000}, "input_data.x is an integer of 5,001 digits"),
    ("int-beyond-64-bits", {"x": 2**64}, "input_data.x is an integer of 20 digits, outside"),
    ("nested-10000", _nested(10_000), "nests more than 64 levels deep"),
    ("cyclic", cyclic(), "input_data.self.self"),
    ("shared-bomb", {"x": shared_bomb()}, "holds more than 250,000 values"),
    ("lone-surrogate", {"x": "\ud800"}, "input_data.x contains the lone surrogate U+D800"),
]


async def test_bad_input_data_is_refused_and_nothing_runs(
    orchestrator: AdvancedPluginOrchestrator,
    client: Client,
    dev_server: DevServer,
    worker: object,
    unique: Callable[[str], str],
) -> None:
    definition = chain(unique("inputs"), 1)
    await orchestrator.register_workflow(definition)
    for _, data, message in BAD_INPUTS:
        await expect(
            orchestrator.execute_workflow(definition.workflow_id, data), Code.InvalidInput, message
        )
    empty = workflow(unique("empty"), [])
    await orchestrator.register_workflow(empty)
    await expect(
        orchestrator.execute_workflow(empty.workflow_id),
        Code.InvalidWorkflowStructure,
        "has no nodes to run",
    )
    await nothing_else_stored(
        orchestrator,
        client,
        dev_server,
        unique,
        {
            definition_entity_id(definition.workflow_id, orchestrator.task_queue),
            definition_entity_id(empty.workflow_id, orchestrator.task_queue),
        },
    )


# -- conditions at run time ----------------------------------------------------------------------


async def test_conditions_keep_their_meaning_and_bounds_inside_a_real_run(
    orchestrator: AdvancedPluginOrchestrator,
    worker: object,
    unique: Callable[[str], str],
) -> None:
    deepest_chain = "x?true:" * 90 + "false"  # the deepest tree allowed, evaluated in full
    deepest_brackets = "(" * 7 + " + ".join(["one"] * 10) + ")" * 7 + " == 10"
    splice = "x' || true || '"
    definition = workflow(
        unique("meaning"),
        [
            node("a", emit={"name": splice, "x": False, "one": 1}),
            node("spliced"),
            node("chain"),
            node("brackets"),
        ],
        [
            edge("a", "spliced", condition="name == 'x'"),
            edge("a", "chain", condition=deepest_chain),
            edge("a", "brackets", condition=deepest_brackets),
        ],
    )
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    final = await orchestrator.wait_for_completion(execution_id, 60)
    assert final.status is Status.Completed, final.error_messages
    states = {n: s["status"] for n, s in final.node_states.items()}
    assert states == {
        "a": "completed",
        "spliced": "skipped",  # the value stayed a value
        "chain": "skipped",
        "brackets": "completed",
    }


@pytest.mark.parametrize(
    ("output", "condition", "message"),
    [
        pytest.param(
            {"items": list(range(3000))},
            "items.all(i, items.all(j, true))",
            f"is too expensive: it needs more than {MAX_CONDITION_COST:,} evaluation steps",
            id="comprehension-bomb",
        ),
        pytest.param({"x": "1"}, "x + 1 == 2", "type mismatch", id="type-confusion"),
        pytest.param(
            {"p": "(a)\\1", "s": "aa"}, "s.matches(p)", "is not RE2 syntax", id="pattern-from-data"
        ),
    ],
)
async def test_a_condition_that_fails_on_the_data_fails_the_run_cleanly(
    orchestrator: AdvancedPluginOrchestrator,
    worker: object,
    unique: Callable[[str], str],
    output: dict[str, Any],
    condition: str,
    message: str,
) -> None:
    definition = workflow(
        unique("fails"), [node("a", emit=output), node("b")], [edge("a", "b", condition=condition)]
    )
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    # A stuck workflow task would never end; a bounded evaluation fails the run at once.
    final = await orchestrator.wait_for_completion(execution_id, 60)
    assert final.status is Status.Failed
    assert any(message in error for error in final.error_messages), final.error_messages
    assert final.node_states["b"]["status"] == "cancelled"


# -- events, approvals and skips -----------------------------------------------------------------

HUGE = "t" * 1_500_000


async def test_event_approval_and_skip_values_out_of_bounds_are_refused(
    orchestrator: AdvancedPluginOrchestrator,
    worker: object,
    unique: Callable[[str], str],
) -> None:
    from engine.runtime.contracts import IncomingEvent
    from tests.long_running.test_event_driven import _router

    o = orchestrator
    events = _router(unique("bounded-events"))
    await o.register_workflow(events)
    event_run = await o.execute_workflow(events.workflow_id)
    approval = workflow(unique("bounded-approval"), [node("ask", "approval"), node("after")])
    await o.register_workflow(approval)
    waiting = await o.execute_workflow(approval.workflow_id)
    await eventually(
        lambda: o.get_execution_status(waiting),
        lambda c: c.execution_data.get("awaiting_approval") == ["ask"],
    )

    big = {"blob": "x" * 300_000}
    for call, message in [
        (o.send_event(event_run, HUGE), "event_type is 1,500,000 characters; the limit is 256"),
        (o.send_event(event_run, "n", event_id=HUGE), "event_id is 1,500,000 characters"),
        (o.send_event(event_run, "n", event_id="i" * 1025), "the limit is 1,024"),
        (o.send_event(event_run, "n", source="s" * 129), "source is 129 characters"),
        (o.send_event(event_run, "\ud800"), "event_type contains a lone surrogate"),
        (o.send_event(event_run, 7), "event_type must be a string, not int"),  # type: ignore[arg-type]
        (o.send_event(event_run, "n", big), "the limit is 262,144"),
        (
            o.send_events(event_run, [IncomingEvent(event_id="a", event_type=HUGE)]),
            "events[0]: event_type is 1,500,000 characters",
        ),
        (
            o.send_events(event_run, [IncomingEvent(event_id="a", payload=big)]),
            "events[0]: payload is",
        ),
        (o.approve_node(waiting, "ask", by="b" * 257), "by is 257 characters; the limit is 256"),
        (o.approve_node(waiting, "ask", comment=HUGE), "the limit is 4,096"),
        (o.approve_node(waiting, "ask", data=big), "the limit is 262,144"),
        (o.approve_node(waiting, HUGE), "node_id is 1,500,000 characters"),
        (o.approve_node(waiting, "ask", "yes"), "approved must be True or False"),  # type: ignore[arg-type]
        (o.skip_node(waiting, "n" * 257), "node_id is 257 characters"),
        (o.skip_node(waiting, "ask", {"blob": "x" * 600_000}), "the limit is 500,000"),
    ]:
        await expect(call, Code.InvalidInput, message)

    # Nothing reached either execution: no event was taken, the approval still waits.
    status = await o.get_execution_status(event_run)
    assert status.status is Status.Running
    assert status.execution_data["events_received"] == 0
    status = await o.get_execution_status(waiting)
    assert status.execution_data["awaiting_approval"] == ["ask"]
    await o.approve_node(waiting, "ask", by="b" * 256, comment="c" * 4096)
    final = await o.wait_for_completion(waiting, 30)
    assert final.node_states["ask"]["result"]["by"] == "b" * 256
    await o.cancel_execution(event_run)
    await o.wait_for_completion(event_run, 30)
