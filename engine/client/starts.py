"""What starting an execution sends to Temporal, built once
(:meth:`~engine.client.orchestrator.AdvancedPluginOrchestrator._start_request`) for both a
direct start and a schedule's action, so a scheduled run is an ordinary execution."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio.common import TypedSearchAttributes

from engine.runtime.contracts import ExecutionInput


@dataclass(frozen=True)
class StartRequest:
    """The start argument of the execution workflow and what Temporal shows of the run."""

    params: ExecutionInput
    # The engine's search attributes, or None where the server has not registered them.
    search_attributes: TypedSearchAttributes | None
    memo: dict[str, Any]
    static_summary: str
