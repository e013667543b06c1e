"""Nodes the engine runs itself, inside the workflow, instead of as plugin activities.

Some node kinds are about *time* and *orchestration*, which only the workflow can do
durably, so they never run as activities:

``aggregate``
    A join: combines its inputs by ``strategy``: ``list`` (default: ``{"items": [input
    values in connection order], "count": n}``), ``merge`` (the inputs' objects merged,
    later connections winning), ``first`` (the first input present) or ``count``
    (``{"count": n}``). Inputs from skipped branches are absent, so a join after a Decision
    aggregates what actually ran. It is also the end of a Splitter's map
    (:mod:`engine.language.maps`).
``wait``
    A durable timer: ``seconds`` to wait, or ``until`` an ISO-8601 time. A worker restart
    does not reset it, and it holds no worker slot while it waits.
``approval``
    Waits for a person: ``orch.approve_node(execution_id, node_id, approved, ...)``
    (``orchestrator approve``) decides. ``expires_after`` seconds (default: a week) and
    ``on_timeout`` (``reject``, the default; ``approve``; or ``fail``) say what happens if
    nobody decides. Output: ``approved``, ``by``, ``comment``, ``data``, ``timed_out``.
``subworkflow``
    Runs another registered workflow (``workflow_id``) as a Temporal child workflow (the
    spec's CompositePlugin integration), with the node's inputs as its input data; the
    node's output is ``{"results": ..., "execution_id": ...}``. The child's definition is
    the version current when the parent started; cancelling the parent cancels it.

Their configuration models are part of every catalog (:data:`ENGINE_NODE_MODELS`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.base.errors import PluginError, PluginErrorCode

AGGREGATE, WAIT, APPROVAL, SUBWORKFLOW, SPLIT = (
    "aggregate",
    "wait",
    "approval",
    "subworkflow",
    "split",
)
WEEK = 7 * 24 * 3600.0
# The most items one activity of a batched Splitter map takes (``batch_size``).
MAX_MAP_BATCH = 1000


class AggregateConfig(BaseModel):
    """Configuration of ``aggregate``."""

    model_config = ConfigDict(extra="forbid")

    strategy: Literal["list", "merge", "first", "count"] = Field(
        "list", description="How inputs are combined: list, merge, first or count"
    )


class WaitConfig(BaseModel):
    """Configuration of ``wait``: exactly one of ``seconds`` and ``until``."""

    model_config = ConfigDict(extra="forbid")

    seconds: float | None = Field(None, ge=0, le=366 * 24 * 3600, description="Seconds to wait")
    until: datetime | None = Field(None, description="ISO-8601 time to wait until")

    @model_validator(mode="after")
    def _one_of(self) -> WaitConfig:
        if (self.seconds is None) == (self.until is None):
            raise ValueError("set exactly one of 'seconds' and 'until'")
        if self.until is not None and self.until.tzinfo is None:
            raise ValueError("'until' needs a time zone (e.g. 2026-12-01T09:00:00Z)")
        return self


class ApprovalConfig(BaseModel):
    """Configuration of ``approval``."""

    model_config = ConfigDict(extra="forbid")

    expires_after: float = Field(WEEK, gt=0, le=366 * 24 * 3600, description="Seconds to wait")
    on_timeout: Literal["reject", "approve", "fail"] = Field(
        "reject", description="What a timeout means"
    )
    prompt: str = Field("", description="What the approver is asked")


class SubworkflowConfig(BaseModel):
    """Configuration of ``subworkflow``."""

    model_config = ConfigDict(extra="forbid")

    workflow_id: str = Field(description="The registered workflow to run as a child")


class SplitConfig(BaseModel):
    """Configuration of ``split`` (a Splitter node; see :mod:`engine.language.maps`)."""

    model_config = ConfigDict(extra="forbid")

    items: str = Field(
        "", description="Input key (or key.path) holding the list; default: the first list"
    )
    max_concurrency: int = Field(50, ge=1, le=1000, description="Items in flight at once")
    max_failures: int = Field(0, ge=0, description="Failed items tolerated before the map fails")
    shard_size: int = Field(
        200, ge=1, le=1000, description="Items per child workflow for maps larger than this"
    )
    batch_size: int | None = Field(
        None,
        ge=1,
        le=MAX_MAP_BATCH,
        description=(
            "Items handed to one activity at once (a map whose body is one plugin node); "
            "with it, a child workflow runs shard_size batches"
        ),
    )


ENGINE_NODE_MODELS: dict[str, type[BaseModel]] = {
    AGGREGATE: AggregateConfig,
    WAIT: WaitConfig,
    APPROVAL: ApprovalConfig,
    SUBWORKFLOW: SubworkflowConfig,
    SPLIT: SplitConfig,
}


def is_engine_node(plugin_id: str) -> bool:
    return plugin_id in ENGINE_NODE_MODELS


def parse_config(plugin_id: str, node_id: str, config: dict[str, Any]) -> Any:
    """The validated configuration of an engine node (keys it does not declare ignored).

    Raises:
        PluginError: ``InvalidConfiguration`` naming the node and field.
    """
    model = ENGINE_NODE_MODELS[plugin_id]
    declared = {k: v for k, v in config.items() if k in model.model_fields}
    try:
        return model.model_validate(declared)
    except ValueError as exc:
        raise PluginError(
            PluginErrorCode.InvalidConfiguration,
            f"node '{node_id}' ({plugin_id}) configuration: {exc}",
        ) from None


def aggregate(inputs: dict[str, Any], config: AggregateConfig) -> dict[str, Any]:
    """Combine a join's inputs (in connection order) by the configured strategy."""
    values = list(inputs.values())
    if config.strategy == "count":
        return {"count": len(values)}
    if config.strategy == "first":
        return {"first": values[0] if values else None}
    if config.strategy == "merge":
        merged: dict[str, Any] = {}
        for value in values:
            if isinstance(value, dict):
                merged.update(value)
        return merged
    return {"items": values, "count": len(values)}
