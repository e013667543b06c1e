"""The invariant every chaos scenario and every soak round ends with.

For each execution, after the faults:

* it ends, within a deadline, in the state the scenario declared (nothing is stuck);
* its stored outcome is whole: events numbered 1..n without gaps, one terminal event and it
  is the last, one ``node_completed`` per completed node and none for other nodes;
* Temporal's history agrees: every scheduled activity was closed, and each node's activity
  completed at most once (a zombie attempt's late completion was rejected), exactly once if
  the node completed;
* the ledger agrees: no attempt ran twice (a light node's may: a worker lost before its
  workflow task completed runs it again), the recorded result is the one a finished attempt
  produced (same attempt, same worker process), nodes that never started left no effect,
  and deduplicated effects were applied exactly once per completed node;
* what the scenario predicted, if it did: node states, inputs, results, start order;
* the server holds exactly the executions the scenario started: none was started twice or
  behind its back (a start retried across a crash), none is left running.

Anomalies come back as sentences, so a test asserts there are none and the soak counts them.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.client import WorkflowExecutionStatus as TemporalStatus

from engine.client import executions
from engine.language.models import PluginWorkflow, WorkflowEventType, WorkflowExecutionStatus
from engine.runtime.contracts import EXECUTION_WORKFLOW, ExecutionOutcome
from tests.chaos.ledger import Ledger

LEDGER_PLUGINS = ("effect", "effect_blocking")
TERMINAL_EVENTS = (
    WorkflowEventType.workflow_completed,
    WorkflowEventType.workflow_failed,
    WorkflowEventType.workflow_cancelled,
)


@dataclass
class Expected:
    """What a scenario declares about one execution (only ``status`` is required)."""

    status: WorkflowExecutionStatus = WorkflowExecutionStatus.Completed
    nodes: dict[str, str] = field(default_factory=dict)  # node id -> final status
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # summarised inputs
    results: list[str] | None = None  # ids of the result nodes
    order: list[str] | None = None  # start order of the nodes that ran (Sequential)


@dataclass
class Verdict:
    anomalies: list[str] = field(default_factory=list)
    histories: list[WorkflowHistory] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)


async def check_runs(
    client: Client, ledger: Ledger, expected: dict[str, Expected], timeout: float = 90.0
) -> Verdict:
    """Check every execution of ``expected``; also fetches their histories for replay."""
    verdict = Verdict()
    checks = [_check_run(client, ledger, eid, want, timeout) for eid, want in expected.items()]
    for anomalies, history, status in await asyncio.gather(*checks):
        verdict.anomalies += anomalies
        if history is not None:
            verdict.histories.append(history)
        verdict.statuses[status] += 1
    return verdict


async def _check_run(
    client: Client, ledger: Ledger, execution_id: str, want: Expected, timeout: float
) -> tuple[list[str], WorkflowHistory | None, str]:
    handle = client.get_workflow_handle(execution_id)
    try:
        await asyncio.wait_for(executions.wait_closed(handle, execution_id), timeout)
    except TimeoutError:
        return [f"{execution_id}: stuck, still running after {timeout:g}s"], None, "stuck"
    description = await executions.describe(handle, execution_id)
    outcome = await executions.outcome_of(handle, description)
    definition = (await executions.start_input(handle)).workflow
    history = await handle.fetch_history()
    problems = outcome_problems(outcome, want)
    problems += history_problems(history, outcome)
    problems += _ledger_problems(ledger, execution_id, outcome, definition)
    status = outcome.context.status.value
    return [f"{execution_id}: {problem}" for problem in problems], history, status


async def server_problems(client: Client, task_queue: str, expected: list[str]) -> list[str]:
    """Compare the executions on the task queue with those the scenario knows of (the
    visibility store lags a moment behind, so it is read until it agrees or 15 s passed).
    Runs that continued as new are links of an execution's chain, not executions."""
    query = (
        f"TaskQueue = '{task_queue}' AND WorkflowType = '{EXECUTION_WORKFLOW}' "
        "AND ExecutionStatus != 'ContinuedAsNew'"
    )
    want = sorted(expected)
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        listed = [(e.id, e.status) async for e in client.list_workflows(query)]
        found = sorted(execution_id for execution_id, _ in listed)
        running = sorted(i for i, status in listed if status is TemporalStatus.RUNNING)
        if (found == want and not running) or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.2)
    unknown, missing = sorted(set(found) - set(want)), sorted(set(want) - set(found))
    problems = [f"{i}: on the server, but no start returned it" for i in unknown]
    problems += [f"{i}: started, but not on the server" for i in missing]
    problems += [f"{i}: listed as running after its end" for i in running]
    if len(found) != len(set(found)):
        problems.append(f"execution ids listed twice: {found}")
    return problems


def outcome_problems(outcome: ExecutionOutcome, want: Expected) -> list[str]:
    """What is wrong with a stored outcome (no server needed: unit tests use it too)."""
    return _whole_outcome_problems(outcome, want) + _expected_problems(outcome, want)


def _whole_outcome_problems(outcome: ExecutionOutcome, want: Expected) -> list[str]:
    context = outcome.context
    problems = []
    if context.status is not want.status:
        problems.append(
            f"ended {context.status.value}, expected {want.status.value} "
            f"({'; '.join(context.error_messages)})"
        )
    if context.status is WorkflowExecutionStatus.Completed and context.progress != 1.0:
        problems.append(f"completed with progress {context.progress}")
    if outcome.truncated:
        return problems
    sequences = [event.sequence for event in outcome.events]
    if sequences != list(range(1, len(sequences) + 1)):
        problems.append(f"event sequence has gaps or repeats: {sequences}")
    terminal = [i for i, event in enumerate(outcome.events) if event.type in TERMINAL_EVENTS]
    if terminal != [len(outcome.events) - 1]:
        problems.append(f"terminal events at {terminal} of {len(outcome.events)}")
    completions = Counter(
        event.node_id
        for event in outcome.events
        if event.type is WorkflowEventType.node_completed and event.node_id
    )
    for node_id, state in context.node_states.items():
        want_count = 1 if state["status"] == "completed" else 0
        if completions[node_id] != want_count:
            problems.append(
                f"node {node_id} ({state['status']}) has {completions[node_id]} completed events"
            )
    return problems


def history_problems(history: WorkflowHistory, outcome: ExecutionOutcome) -> list[str]:
    """Activities of one Temporal run left open or completed twice, and completed nodes
    whose activity did not complete exactly once."""
    scheduled: dict[int, str] = {}
    closed: set[int] = set()
    completed: Counter[str] = Counter()
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            activity_id = event.activity_task_scheduled_event_attributes.activity_id
            scheduled[event.event_id] = activity_id
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            source = event.activity_task_completed_event_attributes.scheduled_event_id
            completed[scheduled.get(source, "?")] += 1
            closed.add(source)
        elif event.event_type in _ACTIVITY_CLOSED:
            closed.add(_scheduled_id(event))
    problems = [
        f"activity {activity_id} was never closed"
        for event_id, activity_id in scheduled.items()
        if event_id not in closed
    ]
    problems += [f"activity {a} completed {n} times" for a, n in completed.items() if n > 1]
    for node_id, state in outcome.context.node_states.items():
        ran_as_activity = node_id in scheduled.values()
        if ran_as_activity and state["status"] == "completed" and completed[node_id] != 1:
            problems.append(f"node {node_id} completed; its activity {completed[node_id]} times")
    return problems


_ACTIVITY_CLOSED = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "activity_task_failed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "activity_task_timed_out_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "activity_task_canceled_event_attributes",
}


def _scheduled_id(event: Any) -> int:
    attributes = getattr(event, _ACTIVITY_CLOSED[event.event_type])
    return int(attributes.scheduled_event_id)


def _ledger_problems(
    ledger: Ledger, execution_id: str, outcome: ExecutionOutcome, definition: PluginWorkflow
) -> list[str]:
    effects = ledger.effects(execution_id)
    phases = Counter((e.node_id, e.attempt, e.phase) for e in effects)
    light = _local_nodes(definition)
    problems = [
        f"node {node_id} attempt {attempt} {phase} {count} times"
        for (node_id, attempt, phase), count in phases.items()
        if count > 1 and node_id not in light  # a lost workflow task reruns its local nodes
    ]
    applied = ledger.applied(execution_id)
    for node in definition.nodes:
        if node.plugin_id not in LEDGER_PLUGINS:
            continue
        state = outcome.context.node_states.get(node.node_id, {})
        status = state.get("status", "pending")
        mine = [e for e in effects if e.node_id == node.node_id]
        if status in ("pending", "skipped") and mine:
            problems.append(f"node {node.node_id} is {status} but left {len(mine)} effects")
        if status == "completed":
            problems += _recorded_result_problems(node.node_id, state, mine)
        count = applied.get(node.node_id, 0)
        wrong = count > 1 or (status == "completed" and count != 1)
        if node.configuration.get("dedup") and wrong:
            problems.append(f"node {node.node_id} ({status}) applied its effect {count} times")
    return problems


def _local_nodes(definition: PluginWorkflow) -> set[str]:
    """Nodes that run as local activities (light nodes, ``execution: local``): their
    effects are at least once per attempt, as a worker lost before their workflow task
    completed runs them again. (The ledger's plugins are not light, so ``auto`` never runs
    them locally.)"""
    shared = definition.global_configuration.get("execution")
    return {
        node.node_id
        for node in definition.nodes
        if node.configuration.get("execution", shared) == "local"
    }


def _recorded_result_problems(node_id: str, state: dict[str, Any], mine: list[Any]) -> list[str]:
    result = state.get("result")
    if result is None:
        return []  # dropped from a very large outcome
    attempt, pid = result.get("attempt"), result.get("pid")
    if attempt != state.get("attempts"):
        return [f"node {node_id} records attempt {state.get('attempts')} with {result}"]
    done = [e for e in mine if e.phase == "done" and e.attempt == attempt and e.pid == pid]
    if not done:
        return [f"node {node_id}: recorded result of attempt {attempt} (pid {pid}) never finished"]
    return []


def _expected_problems(outcome: ExecutionOutcome, want: Expected) -> list[str]:
    context = outcome.context
    problems = []
    for node_id, status in want.nodes.items():
        actual = context.node_states.get(node_id, {}).get("status")
        if actual != status:
            problems.append(f"node {node_id} is {actual}, expected {status}")
    for node_id, inputs in want.inputs.items():
        result = context.node_states.get(node_id, {}).get("result") or {}
        if result.get("inputs") != inputs:
            problems.append(f"node {node_id} got inputs {result.get('inputs')}, expected {inputs}")
    if want.results is not None:
        results = sorted(context.execution_data.get("results", {}))
        if results != sorted(want.results):
            problems.append(f"results of {results}, expected {sorted(want.results)}")
    if want.order is not None:
        started = [
            event.node_id
            for event in outcome.events
            if event.type is WorkflowEventType.node_started
        ]
        if started != want.order:
            problems.append(f"nodes started in order {started}, expected {want.order}")
    return problems
