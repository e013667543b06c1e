"""Registration rules for a node's ``compensation``
(:class:`~engine.language.models.NodeCompensation`).

A compensation undoes a completed node when its batch execution fails or is cancelled
(:mod:`engine.runtime.compensation` says which run, in which order, with what). Checked at
registration (and every modification), never in workflow code, so the rules can change
without touching runs in flight:

* only the batch modes (Sequential, Parallel, Conditional) run compensations: a node of an
  EventDriven or Streaming definition may not name one;
* ``plugin_id`` is a plugin's (printable ASCII, at most ``MAX_ID_LENGTH`` characters), not
  one of the engine's own nodes (``wait``, ``approval``, ...): a compensation is a plugin
  call; the plugin catalog then checks that the plugin exists and its configuration
  (:mod:`engine.temporal.catalog`);
* the configuration is plain JSON; its engine keys (``retry``, ``timeout``,
  ``heartbeat_timeout``) are valid as a node's are, ``optional`` and the global-only keys
  are refused;
* nodes inside a Splitter's map (its body and its Aggregator) run once per item and are not
  compensated one by one: they may not name a compensation (the Splitter may: it receives
  the map's input and output);
* at most :data:`MAX_COMPENSATIONS` nodes of a definition name one: every compensation is
  an activity in the failed run's history, after the run's own events.
"""

from __future__ import annotations

import re

from engine.base.errors import PluginError
from engine.language.engine_nodes import is_engine_node
from engine.language.maps import map_plan
from engine.language.models import PluginWorkflow, WorkflowNode, WorkflowNodeType
from engine.language.options import GLOBAL_ONLY_KEYS, node_options

# Nodes of one definition with a compensation: each runs as an activity (about 6 history
# events, more with retries) after the failed run's own history, which may be near
# max_history_events already; 500 keeps the run far below Temporal's 51,200 events.
MAX_COMPENSATIONS = 500
_PLUGIN_ID_PATTERN = re.compile(r"[!-~]+")
_MAX_PLUGIN_ID = 128


def compensation_problems(workflow: PluginWorkflow, *, with_maps: bool = True) -> list[str]:
    """What is wrong with the definition's compensations, one message per problem, each
    naming its node (empty when they are fine or there are none). ``with_maps=False``
    leaves out the nodes of Splitter maps (for a graph with problems of its own)."""
    compensated = [node for node in workflow.nodes if node.compensation is not None]
    if not compensated:
        return []
    mode = workflow.execution_mode
    if mode.is_long_running:
        names = ", ".join(f"'{node.node_id}'" for node in compensated[:5])
        return [
            f"node {names}: compensation runs in Sequential, Parallel and Conditional "
            f"executions only; this workflow is {mode.name}"
        ]
    problems: list[str] = []
    if len(compensated) > MAX_COMPENSATIONS:
        problems.append(
            f"{len(compensated)} nodes name a compensation; the limit is {MAX_COMPENSATIONS}"
        )
    for node in compensated:
        problems.extend(_node_problems(workflow, node))
    if with_maps:
        problems.extend(_map_problems(workflow))
    return problems


def _node_problems(workflow: PluginWorkflow, node: WorkflowNode) -> list[str]:
    compensation = node.compensation
    assert compensation is not None
    where = f"node '{node.node_id}' compensation"
    plugin_id = compensation.plugin_id
    problems: list[str] = []
    if not plugin_id:
        problems.append(f"{where} has no plugin_id")
    elif not _PLUGIN_ID_PATTERN.fullmatch(plugin_id) or len(plugin_id) > _MAX_PLUGIN_ID:
        problems.append(
            f"{where}: plugin_id {plugin_id[:60]!r} must be printable ASCII without spaces, "
            f"at most {_MAX_PLUGIN_ID} characters"
        )
    elif is_engine_node(plugin_id):
        problems.append(
            f"{where}: '{plugin_id}' is one of the engine's own nodes; a compensation runs a plugin"
        )
    config = compensation.configuration
    misplaced = sorted(GLOBAL_ONLY_KEYS & config.keys())
    if misplaced:
        problems.append(f"{where}: {', '.join(misplaced)} belongs in global_configuration")
    if "optional" in config:
        problems.append(
            f"{where}: 'optional' does not apply to a compensation (a compensation that "
            "fails is reported and the others still run)"
        )
    try:
        node_options(workflow.global_configuration, config)
    except ValueError as exc:
        problems.append(f"{where} configuration: {exc}")
    return problems


def _map_problems(workflow: PluginWorkflow) -> list[str]:
    """Nodes of a Splitter's map that name a compensation (maps that are malformed are
    reported by their own check)."""
    problems: list[str] = []
    nodes = {node.node_id: node for node in workflow.nodes}
    for node in workflow.nodes:
        if node.node_type is not WorkflowNodeType.Splitter or node.plugin_id != "split":
            continue
        try:
            plan = map_plan(workflow, node.node_id)
        except PluginError:
            continue
        for member in [*plan.body, plan.aggregator]:
            if nodes[member].compensation is not None:
                problems.append(
                    f"node '{member}' compensation: the node belongs to the map of Splitter "
                    f"'{node.node_id}' and runs once per item; put the compensation on the "
                    "Splitter, which receives the map's input and output"
                )
    return problems
