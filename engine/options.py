"""Reserved configuration keys: retries, timeouts and parallelism.

A node's ``configuration`` is merged over the workflow's ``global_configuration`` (top-level
keys; the node wins). A few keys belong to the engine, not to the plugin, and are removed from
what the plugin sees:

``retry``
    ``max_attempts`` (1-100, default 3), ``initial_interval`` (seconds, default 1),
    ``backoff_coefficient`` (>= 1, default 2), ``maximum_interval`` (seconds, default 60),
    ``non_retryable_errors`` (error type names, e.g. ``"ValueError"``). The node's ``retry``
    is merged key by key over the global one.
``timeout``
    Seconds one attempt may run (default 3600).
``heartbeat_timeout``
    Seconds without a heartbeat before an attempt counts as lost, e.g. because its worker died
    (default 30). The engine heartbeats for every plugin, so plugins need not.
``max_parallelism``
    Global only: nodes running at once in Parallel and Conditional mode (1-1000, default 100).

Defaults are finite on purpose: a node never retries forever.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.models import describe_validation_error

RESERVED_KEYS = frozenset({"retry", "timeout", "heartbeat_timeout", "max_parallelism"})
GLOBAL_ONLY_KEYS = frozenset({"max_parallelism"})

MAX_TIMEOUT_SECONDS = 30 * 24 * 3600.0


class RetrySettings(BaseModel):
    """Retry policy for a node's plugin call (maps onto Temporal's RetryPolicy)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(3, ge=1, le=100)
    initial_interval: float = Field(1.0, gt=0, le=86400)
    backoff_coefficient: float = Field(2.0, ge=1, le=100)
    maximum_interval: float = Field(60.0, gt=0, le=86400)
    non_retryable_errors: list[str] = Field(default_factory=list)


class NodeOptions(BaseModel):
    """Everything the engine needs to call a node's plugin, besides the plugin's own config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    retry: RetrySettings = Field(default_factory=RetrySettings)
    timeout: float = Field(3600.0, gt=0, le=MAX_TIMEOUT_SECONDS)
    heartbeat_timeout: float = Field(30.0, gt=0, le=MAX_TIMEOUT_SECONDS)


class GlobalOptions(BaseModel):
    """Workflow-wide engine settings read from ``global_configuration``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    max_parallelism: int = Field(100, ge=1, le=1000)


def node_options(global_config: dict[str, Any], node_config: dict[str, Any]) -> NodeOptions:
    """Resolve a node's options from both levels of configuration.

    Raises:
        ValueError: a reserved key has a bad value; the message names the key.
    """
    merged: dict[str, Any] = {}
    for key in ("timeout", "heartbeat_timeout"):
        if key in node_config:
            merged[key] = node_config[key]
        elif key in global_config:
            merged[key] = global_config[key]
    retry_global = global_config.get("retry", {})
    retry_node = node_config.get("retry", {})
    for where, value in (("global_configuration.retry", retry_global), ("retry", retry_node)):
        if not isinstance(value, dict):
            raise ValueError(f"{where} must be an object, got {type(value).__name__}")
    if retry_global or retry_node:
        merged["retry"] = {**retry_global, **retry_node}
    try:
        return NodeOptions.model_validate(merged)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc)) from None


def global_options(global_config: dict[str, Any]) -> GlobalOptions:
    """Read the workflow-wide settings.

    Raises:
        ValueError: a reserved key has a bad value; the message names the key.
    """
    try:
        return GlobalOptions.model_validate(global_config)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc)) from None


def plugin_config(global_config: dict[str, Any], node_config: dict[str, Any]) -> dict[str, Any]:
    """The configuration a plugin sees: node over global, without the engine's keys."""
    merged = {**global_config, **node_config}
    return {key: value for key, value in merged.items() if key not in RESERVED_KEYS}
