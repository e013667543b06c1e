"""The plugin catalog: what the workers of a task queue can run, checked at registration.

Workers describe their plugins (ids, configuration JSON Schemas, ports) when they start and
publish them to a small entity workflow per task queue
(:class:`engine.temporal.registry.PluginCatalog`),
which keeps the merged catalog in its memo, so any client reads it with a ``describe`` and
no worker needs to be running. ``register_workflow`` checks every node against it:

* an unknown ``plugin_id`` is ``PluginNotFound`` (a Source node of an EventDriven or
  Streaming workflow needs a plugin that is a source);
* a node's configuration that does not match the plugin's schema is
  ``InvalidWorkflowStructure`` naming node and field. Keys of ``global_configuration`` count
  for the fields a plugin declares and are ignored by the others;
* a node's ``compensation`` is checked the same way: its plugin must be a node plugin of
  the catalog (``PluginNotFound``) and its configuration must match that plugin's schema;
* every value the schema marks as an expression (``"x-expression"``, see
  :mod:`engine.language.expressions`) must compile as it will at run time:
  ``InvalidWorkflowStructure``
  naming node, field (``set.total``) and the compiler's reason.

Every problem of a definition is reported at once: :func:`validate_with_catalog` adds the
catalog's problems to the structural ones of :func:`engine.language.validation.validate_workflow`,
in
one :class:`PluginError` whose ``details["problems"]`` lists them all (each catalog problem
with its ``node_id`` and ``plugin_id``).

With no catalog yet (no worker ever started on the queue) only structure is checked.
``orchestrator validate`` checks against a catalog of the plugins installed where it runs.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import jsonschema
import jsonschema.validators

from engine.base.errors import PluginErrorCode
from engine.language.engine_nodes import is_engine_node
from engine.language.expressions import EXPRESSION_KEYWORD, expression_problem
from engine.language.models import (
    PluginWorkflow,
    WorkflowNode,
    WorkflowNodeType,
)
from engine.language.options import RESERVED_KEYS
from engine.language.validation import Problem, problems_error, validate_workflow
from engine.runtime.contracts import PluginInfo

if TYPE_CHECKING:  # the worker passes its registry; this module imports no plugin code
    from plugins import PluginRegistry


def describe_plugins(registry: PluginRegistry) -> list[PluginInfo]:
    """The catalog entries of a worker's plugins, by id."""
    infos: dict[str, PluginInfo] = {}
    for item in registry.plugins():
        infos[item.plugin_id] = PluginInfo(
            plugin_id=item.plugin_id,
            description=item.description,
            config_schema=item.config_model.model_json_schema() if item.config_model else None,
            input_ports=list(item.input_ports),
            output_ports=list(item.output_ports),
            light=item.light,
        )
    for spec in registry.sources():
        schema = spec.config_model.model_json_schema() if spec.config_model else None
        info = infos.get(spec.plugin_id)
        if info is None:
            infos[spec.plugin_id] = PluginInfo(
                plugin_id=spec.plugin_id,
                description=spec.description,
                function=False,
                source=True,
                source_config_schema=schema,
                output_ports=list(spec.output_ports),
            )
        else:
            info.source = True
            info.source_config_schema = schema
    return [infos[key] for key in sorted(infos)]


def uses_auto(definitions: Iterable[PluginWorkflow]) -> bool:
    """Does a node of these definitions (an execution's and its sub-workflows') have
    ``execution: auto``, its own or from ``global_configuration``?"""
    for definition in definitions:
        shared = definition.global_configuration.get("execution")
        for node in definition.nodes:
            if node.configuration.get("execution", shared) == "auto":
                return True
    return False


def light_plugins(catalog: Iterable[PluginInfo]) -> list[str]:
    """The ids of the catalog's light plugins, sorted: what an execution whose nodes use
    ``execution: auto`` carries in ``ExecutionInput.light_plugins``."""
    return sorted({info.plugin_id for info in catalog if info.light and info.function})


#: Who offers the plugins of a catalog read from the task queue, as problems name them.
TASK_QUEUE_WORKERS = "no worker of this task queue offers"
# Problems of one node's configuration shown in its message.
_SHOWN_PER_NODE = 5


def validate_with_catalog(
    workflow: PluginWorkflow,
    catalog: Mapping[str, PluginInfo] | None,
    *,
    offered_by: str = TASK_QUEUE_WORKERS,
) -> None:
    """Check a definition's structure and, with a catalog, every node's plugin and
    configuration; every problem at once.

    Args:
        workflow: The definition.
        catalog: Plugin infos by id; None or empty checks structure only.
        offered_by: How a missing plugin's message names the catalog's origin, completing
            "uses plugin 'x', which ...".

    Raises:
        PluginError: the first problem's code; ``details["problems"]`` lists every one.
    """
    if not catalog:
        validate_workflow(workflow)
        return
    validate_workflow(
        workflow, more=lambda checked: catalog_problems(checked, catalog, offered_by=offered_by)
    )


def check_workflow(
    workflow: PluginWorkflow,
    catalog: Mapping[str, PluginInfo],
    *,
    offered_by: str = TASK_QUEUE_WORKERS,
) -> None:
    """Check every node's plugin and configuration against the catalog (not the structure).

    Raises:
        PluginError: ``PluginNotFound`` or ``InvalidWorkflowStructure`` (the first problem's),
            naming every node at fault.
    """
    problems = catalog_problems(workflow, catalog, offered_by=offered_by)
    if problems:
        raise problems_error(workflow, problems)


def catalog_problems(
    workflow: PluginWorkflow,
    catalog: Mapping[str, PluginInfo],
    *,
    offered_by: str = TASK_QUEUE_WORKERS,
) -> list[Problem]:
    """Every node's problems with the catalog, in node order (one per node at most)."""
    problems: list[Problem] = []
    for node in workflow.nodes:
        if not is_engine_node(node.plugin_id):  # else run by the engine; validation checks it
            problem = _node_problem(workflow, node, catalog, _as_source(workflow, node), offered_by)
            if problem is not None:
                problems.append(problem)
        if node.compensation is not None:
            problem = _compensation_problem(workflow, node, catalog, offered_by)
            if problem is not None:
                problems.append(problem)
    return problems


def _compensation_problem(
    workflow: PluginWorkflow,
    node: WorkflowNode,
    catalog: Mapping[str, PluginInfo],
    offered_by: str,
) -> Problem | None:
    """A node's compensation: its plugin is a node plugin of the catalog, and its
    configuration (with the workflow-wide settings the plugin declares) fits the plugin's
    schema, as a node's does. Engine nodes are refused by validation."""
    compensation = node.compensation
    assert compensation is not None
    plugin_id = compensation.plugin_id
    if not plugin_id or is_engine_node(plugin_id):
        return None
    details = {"node_id": node.node_id, "plugin_id": plugin_id}
    info = catalog.get(plugin_id)
    if info is None or not info.function:
        known = ", ".join(sorted(k for k, v in catalog.items() if v.function))
        return Problem(
            PluginErrorCode.PluginNotFound,
            f"node '{node.node_id}' compensation uses plugin '{plugin_id}', which "
            f"{offered_by} as a node plugin (offered: {known or 'none'})",
            details,
        )
    if info.config_schema is None:
        return None
    reasons = _config_problems(workflow, compensation.configuration, info.config_schema)
    if not reasons:
        return None
    shown = "; ".join(reasons[:_SHOWN_PER_NODE])
    if len(reasons) > _SHOWN_PER_NODE:
        shown += f"; and {len(reasons) - _SHOWN_PER_NODE} more"
    return Problem(
        PluginErrorCode.InvalidWorkflowStructure,
        f"node '{node.node_id}' compensation (plugin '{plugin_id}') configuration: {shown}",
        details,
    )


def unchecked_nodes(workflow: PluginWorkflow, catalog: Mapping[str, PluginInfo]) -> list[str]:
    """Nodes whose plugin is in the catalog without a configuration schema (only their
    plugin id could be checked), as ``"node (plugin)"``."""
    unchecked: list[str] = []
    for node in workflow.nodes:
        info = catalog.get(node.plugin_id)
        if info is None or is_engine_node(node.plugin_id):
            continue
        if _schema(info, _as_source(workflow, node)) is None:
            unchecked.append(f"{node.node_id} ({node.plugin_id})")
    return unchecked


def _as_source(workflow: PluginWorkflow, node: WorkflowNode) -> bool:
    """Does the node open its plugin as a source (a Source node of a long-running mode)?"""
    return workflow.execution_mode.is_long_running and node.node_type is WorkflowNodeType.Source


def _schema(info: PluginInfo, as_source: bool) -> dict[str, Any] | None:
    return info.source_config_schema if as_source else info.config_schema


def _node_problem(
    workflow: PluginWorkflow,
    node: WorkflowNode,
    catalog: Mapping[str, PluginInfo],
    as_source: bool,
    offered_by: str,
) -> Problem | None:
    details = {"node_id": node.node_id, "plugin_id": node.plugin_id}
    info = catalog.get(node.plugin_id)
    if info is None or (as_source and not info.source) or (not as_source and not info.function):
        role = "a source" if as_source else "a node plugin"
        known = ", ".join(
            sorted(k for k, v in catalog.items() if (v.source if as_source else v.function))
        )
        return Problem(
            PluginErrorCode.PluginNotFound,
            f"node '{node.node_id}' uses plugin '{node.plugin_id}', which {offered_by} as "
            f"{role} (offered: {known or 'none'})",
            details,
        )
    schema = _schema(info, as_source)
    if schema is None:
        return None
    reasons = _config_problems(workflow, node.configuration, schema)
    if not reasons:
        return None
    shown = "; ".join(reasons[:_SHOWN_PER_NODE])
    if len(reasons) > _SHOWN_PER_NODE:
        shown += f"; and {len(reasons) - _SHOWN_PER_NODE} more"
    return Problem(
        PluginErrorCode.InvalidWorkflowStructure,
        f"node '{node.node_id}' (plugin '{node.plugin_id}') configuration: {shown}",
        details,
    )


def _config_problems(
    workflow: PluginWorkflow, node_config: dict[str, Any], schema: dict[str, Any]
) -> list[str]:
    """What is wrong with a node's configuration (with the workflow-wide settings the plugin
    declares), each naming its field."""
    declared = set(schema.get("properties", {}))
    config = {
        key: value
        for key, value in workflow.global_configuration.items()
        if key in declared and key not in RESERVED_KEYS
    }
    config.update({k: v for k, v in node_config.items() if k not in RESERVED_KEYS})
    errors = sorted(
        (found for error in _Validator(schema).iter_errors(config) for found in _precise(error)),
        key=lambda e: [str(part) for part in e.absolute_path],
    )
    return [_describe(error, declared) for error in errors]


def _expression(
    validator: Any, language: Any, instance: Any, schema: dict[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    """The ``x-expression`` keyword: the value must compile in the marked language."""
    if isinstance(language, str) and (problem := expression_problem(language, instance)):
        yield jsonschema.ValidationError(problem)


# Draft 2020-12 plus the expression keyword (jsonschema's extend() carries no type hints).
_Validator: type[jsonschema.Draft202012Validator] = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    jsonschema.Draft202012Validator, {EXPRESSION_KEYWORD: _expression}
)


def _precise(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """The errors that say what is wrong with a field whose schema has alternatives: an
    expression that does not compile fails every branch of an ``anyOf``, and a value of an
    optional field fails its ``null`` branch too; "not valid under any of the given
    schemas" would name neither."""
    if error.validator not in ("anyOf", "oneOf") or not error.absolute_path:
        return [error]
    if found := _expression_errors(error):
        return found
    branch = _only_branch_but_null(error)
    within = [
        sub
        for sub in error.context or ()
        if sub.relative_schema_path and sub.relative_schema_path[0] == branch
    ]
    if branch is None or not within:
        return [error]
    return [precise for sub in within for precise in _precise(sub)]


def _only_branch_but_null(error: jsonschema.ValidationError) -> int | None:
    """The index of the one alternative that is not ``{"type": "null"}``, if so."""
    branches = error.validator_value if isinstance(error.validator_value, list) else []
    others = [index for index, branch in enumerate(branches) if branch != {"type": "null"}]
    return others[0] if len(others) == 1 and len(branches) == 2 else None


def _expression_errors(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    if error.validator == EXPRESSION_KEYWORD:
        return [error]
    return [found for sub in error.context or () for found in _expression_errors(sub)]


def _describe(error: jsonschema.ValidationError, declared: set[str]) -> str:
    location = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties":
        return f"{error.message} (not a configuration field{_suggestion(error, declared)})"
    if error.validator in ("oneOf", "anyOf") and not location:
        # Rules across fields: the schema's own description says what is meant.
        rule = error.schema.get("description") if isinstance(error.schema, dict) else None
        return str(rule or f"the fields do not combine as the plugin requires ({error.validator})")
    return f"{location}: {error.message}" if location else error.message


def _suggestion(error: jsonschema.ValidationError, declared: set[str]) -> str:
    """ "; did you mean 'filter'?" for misspelled top-level keys."""
    if error.absolute_path or not isinstance(error.instance, dict):
        return ""
    hints: list[tuple[str, str]] = []
    for key in sorted(str(k) for k in set(error.instance) - declared):
        close = difflib.get_close_matches(key, sorted(declared), n=1)
        if close:
            hints.append((key, close[0]))
    if not hints:
        return ""
    if len(hints) == 1:
        return f"; did you mean '{hints[0][1]}'?"
    return "; did you mean " + ", ".join(f"'{near}' for '{key}'" for key, near in hints) + "?"
