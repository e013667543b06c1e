"""What a plugin receives besides its inputs and configuration."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog


@dataclass
class PluginContext:
    """Per-call context handed to a plugin.

    Attributes:
        execution_id: The execution (Temporal workflow id) the node belongs to.
        workflow_id: The definition's id.
        node_id: The node being run.
        plugin_id: The plugin's id.
        attempt: 1 for the first attempt, 2 for the first retry, ...
        checkpoint: Details of the last heartbeat of a previous attempt (None on the first),
            so a retried plugin can resume where the previous attempt stopped.
        idempotency_key: Stable across retries of this node in this run (run id + activity
            id): use it to deduplicate side effects.
        stream_batch: Streaming only (None elsewhere): how many batches the stream had
            committed before this one. After a crash the stream resumes from its last
            recorded checkpoint, and numbers the batches from there again.
        stream_replays: Streaming only: the source delivers again every item after a
            checkpoint (``SourceSpec.replays``). Then a batch whose number was seen before
            starts where that one started (a replay after a crash), and a sink can cut back
            to there (see ``data_sink``); otherwise numbers can repeat while only the items
            never acknowledged come again.
        logger: A structlog logger bound to execution, node, plugin and attempt.
    """

    execution_id: str
    workflow_id: str
    node_id: str
    plugin_id: str
    attempt: int
    idempotency_key: str
    checkpoint: Any = None
    stream_batch: int | None = None
    stream_replays: bool = False
    logger: Any = field(default_factory=lambda: structlog.get_logger("plugin"))
    _heartbeat: Callable[..., None] = field(default=lambda *details: None, repr=False)
    _cancelled: threading.Event = field(default_factory=threading.Event, repr=False)

    def heartbeat(self, *details: Any) -> None:
        """Report liveness, optionally with checkpoint details that survive a retry.

        The engine already heartbeats for every plugin; call this to record progress.
        Safe to call from a thread (synchronous plugins run in one).
        """
        self._heartbeat(*details)

    @property
    def is_cancelled(self) -> bool:
        """True once the node has been cancelled; synchronous plugins should poll it.

        Async plugins are cancelled with ``asyncio.CancelledError`` at their next await.
        """
        return self._cancelled.is_set()
