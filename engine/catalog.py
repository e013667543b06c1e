"""The plugin catalog: what the workers of a task queue can run, checked at registration.

Workers describe their plugins (ids, configuration JSON Schemas, ports) when they start and
publish them to a small entity workflow per task queue (:class:`engine.registry.PluginCatalog`),
which keeps the merged catalog in its memo, so any client reads it with a ``describe`` and
no worker needs to be running. ``register_workflow`` checks every node against it:

* an unknown ``plugin_id`` is ``PluginNotFound`` (a Source node of an EventDriven or
  Streaming workflow needs a plugin that is a source);
* a node's configuration that does not match the plugin's schema is
  ``InvalidWorkflowStructure`` naming node and field. Keys of ``global_configuration`` count
  for the fields a plugin declares and are ignored by the others.

With no catalog yet (no worker ever started on the queue) the check is skipped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jsonschema

from engine.contracts import PluginInfo
from engine.engine_nodes import is_engine_node
from engine.errors import PluginError, PluginErrorCode
from engine.models import PluginWorkflow, WorkflowExecutionMode, WorkflowNodeType
from engine.options import RESERVED_KEYS

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


def check_workflow(workflow: PluginWorkflow, catalog: dict[str, PluginInfo]) -> None:
    """Check every node's plugin and configuration against the catalog.

    Raises:
        PluginError: ``PluginNotFound`` or ``InvalidWorkflowStructure``, naming the node.
    """
    long_running = workflow.execution_mode in (
        WorkflowExecutionMode.EventDriven,
        WorkflowExecutionMode.Streaming,
    )
    for node in workflow.nodes:
        if is_engine_node(node.plugin_id):
            continue  # run by the engine itself; validation checks their configuration
        info = catalog.get(node.plugin_id)
        as_source = long_running and node.node_type is WorkflowNodeType.Source
        if info is None or (as_source and not info.source) or (not as_source and not info.function):
            role = "a source" if as_source else "a node plugin"
            known = ", ".join(
                sorted(k for k, v in catalog.items() if (v.source if as_source else v.function))
            )
            raise PluginError(
                PluginErrorCode.PluginNotFound,
                f"workflow '{workflow.workflow_id}': node '{node.node_id}' uses plugin "
                f"'{node.plugin_id}', which no worker of this task queue offers as {role} "
                f"(offered: {known or 'none'})",
                {"node_id": node.node_id, "plugin_id": node.plugin_id},
            )
        schema = info.source_config_schema if as_source else info.config_schema
        if schema is not None:
            _check_config(workflow, node.node_id, node.plugin_id, node.configuration, schema)


def _check_config(
    workflow: PluginWorkflow,
    node_id: str,
    plugin_id: str,
    node_config: dict[str, Any],
    schema: dict[str, Any],
) -> None:
    declared = set(schema.get("properties", {}))
    config = {
        key: value
        for key, value in workflow.global_configuration.items()
        if key in declared and key not in RESERVED_KEYS
    }
    config.update({k: v for k, v in node_config.items() if k not in RESERVED_KEYS})
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        problems = "; ".join(_describe(error) for error in errors[:5])
        raise PluginError(
            PluginErrorCode.InvalidWorkflowStructure,
            f"workflow '{workflow.workflow_id}': node '{node_id}' (plugin '{plugin_id}') "
            f"configuration: {problems}",
            {"node_id": node_id, "plugin_id": plugin_id},
        )


def _describe(error: jsonschema.ValidationError) -> str:
    location = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties":
        return f"{error.message} (not a configuration field)"
    if error.validator in ("oneOf", "anyOf") and not location:
        # Rules across fields: the schema's own description says what is meant.
        rule = error.schema.get("description") if isinstance(error.schema, dict) else None
        return str(rule or f"the fields do not combine as the plugin requires ({error.validator})")
    return f"{location}: {error.message}" if location else error.message
