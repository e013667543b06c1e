"""``file_system_monitor``: a source of file events from a watched directory (a drop zone).

EventDriven's file drop zone: every file that lands in (or changes in) ``watch_path`` becomes
one event. The directory is polled (``os.scandir`` in a worker thread, so the event loop stays
free); no inotify, so it works the same on every platform and on network file systems.

Config:
    watch_path (str, required): The directory to watch. If it does not exist yet but its
        parent does, the source waits for it (a warning is logged once); if the parent does
        not exist either, opening fails with ``InvalidConfiguration`` naming ``watch_path``.
        A path that exists but is not a directory is also ``InvalidConfiguration``.
    file_pattern (str): A glob the file name must match (default ``"*"``); ``fnmatch``
        syntax (``*``, ``?``, ``[abc]``). A pattern holding ``/`` is matched against the path
        relative to ``watch_path`` instead. Names starting with ``.`` (hidden files, and the
        temporary files atomic writers rename into place) are ignored unless the pattern
        itself starts with ``.``.
    recursive (bool): Watch subdirectories too (default false). Symbolic links to
        directories are not followed.
    poll_interval (number > 0): Seconds between scans (default 0.5).
    settle_seconds (number >= 0): A file must keep the same size and modification time for
        this long before it is emitted, so half-written files are not picked up (default
        0.2). A file still growing is emitted once it has been quiet this long.
    include_existing (bool): On the very first start (no checkpoint), files already present
        are events too (default true). When false they are taken as the baseline: only later
        new or changed files are events.

Items (one per new or changed regular file):
    value: ``{"path": absolute path, "name": file name, "size": bytes, "mtime": seconds since
    the epoch (float), "event": "created" | "modified"}``.
    item_id: ``"{path}|{size}|{mtime_ns}"``: the same file content state has the same id, so
    the engine deduplicates a redelivery, and a later change gets a new id.
    event_type: ``"created"`` (a path not seen before, or seen and then deleted) or
    ``"modified"`` (a known path whose size or modification time changed).

Delivery: at least once. A file is recorded in the checkpoint only when its item is
committed; after a crash the source reopens with the last persisted checkpoint, and every file
whose current state is not in it is emitted again (with the same ``item_id`` if unchanged). A
file that lands while nothing runs is found by the first scan after the reopen. Deleting a
file emits nothing; its entry leaves the checkpoint. A file that is changed more than once
between scans is one event (the latest state).

Checkpoint:
    ``{absolute path: [size, mtime_ns]}``: the committed state of the files still present
    (entries of files that disappeared are dropped, so its size is bounded by the directory).
    ``None`` is never returned once open; ``{}`` means nothing committed.

``read(max_items, max_wait)`` returns as soon as at least one item is ready, or ``[]`` after
``max_wait`` seconds. The source never ends (``exhausted`` is always false).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import os
import stat
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from plugins._context import PluginContext
from plugins._source import Source, SourceItem, source_plugin
from plugins.builtin._common import config_error, json_type, optional_bool, required_str
from plugins.builtin._models import (
    NonEmptyStr,
    NonNegativeSeconds,
    PluginConfig,
    PositiveSeconds,
)
from plugins.builtin._streams import optional_number

#: A file's state: (size in bytes, modification time in nanoseconds).
Signature = tuple[int, int]


@dataclass(frozen=True)
class _Settings:
    directory: str
    pattern: str
    match_relative: bool
    hidden_allowed: bool
    recursive: bool
    poll_interval: float
    settle_seconds: float
    include_existing: bool


class FileSystemMonitorConfig(PluginConfig):
    """Configuration of the ``file_system_monitor`` source."""

    watch_path: NonEmptyStr = Field(
        description="The directory to watch (waited for if only its parent exists yet)."
    )
    file_pattern: NonEmptyStr = Field(
        "*",
        description="fnmatch glob the file name must match; with a '/' it is matched against "
        "the path relative to watch_path.",
    )
    recursive: bool = Field(False, description="Watch subdirectories too.")
    poll_interval: PositiveSeconds = Field(0.5, description="Seconds between scans.")
    settle_seconds: NonNegativeSeconds = Field(
        0.2, description="Seconds a file must stay unchanged before it is emitted."
    )
    include_existing: bool = Field(
        True, description="On the first start, files already present are events too."
    )


@source_plugin("file_system_monitor", config=FileSystemMonitorConfig)
async def open_file_system_monitor(
    config: dict[str, Any], checkpoint: Any, ctx: PluginContext
) -> Source:
    """Events for files created or changed in a watched directory (a polling drop zone)."""
    settings = await asyncio.to_thread(_settings, config)  # it looks at the file system
    return FileSystemMonitor(settings, _restore(checkpoint), ctx, first_start=checkpoint is None)


class FileSystemMonitor:
    """The open source; see the module documentation."""

    def __init__(
        self,
        settings: _Settings,
        committed: dict[str, Signature],
        ctx: PluginContext,
        *,
        first_start: bool,
    ) -> None:
        self._settings = settings
        self._ctx = ctx
        self._committed = committed
        # The latest state emitted per path (committed or not): a change against it is new.
        self._emitted: dict[str, Signature] = dict(committed)
        # Files whose state differs from the emitted one, waiting to settle: (state, since).
        self._settling: dict[str, tuple[Signature, float]] = {}
        self._ready: deque[SourceItem] = deque()
        self._baseline_pending = first_start and not settings.include_existing
        self._next_scan = 0.0
        self._warned_missing = False
        self._closed = False

    async def read(self, max_items: int, max_wait: float) -> list[SourceItem]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(max_wait, 0.0)
        while not self._ready:
            now = loop.time()
            if now >= self._next_scan:
                await self._scan()
                if self._ready:
                    break
                now = loop.time()
            if now >= deadline:
                return []
            wake = min(self._next_scan, deadline)
            await asyncio.sleep(max(wake - now, 0.001))
        count = min(max(max_items, 1), len(self._ready))
        return [self._ready.popleft() for _ in range(count)]

    async def commit(self, items: list[SourceItem]) -> None:
        for item in items:
            path, signature = _parse_item_id(item.item_id)
            self._committed[path] = signature

    def checkpoint(self) -> Any:
        return {path: [size, mtime_ns] for path, (size, mtime_ns) in self._committed.items()}

    @property
    def exhausted(self) -> bool:
        return False

    async def close(self) -> None:
        self._closed = True
        self._ready.clear()
        self._settling.clear()

    # --- scanning -------------------------------------------------------------------------

    async def _scan(self) -> None:
        loop = asyncio.get_running_loop()
        listing = await asyncio.to_thread(_list_files, self._settings)
        now = loop.time()
        self._next_scan = now + self._settings.poll_interval
        if listing is None:
            if not self._warned_missing:
                self._warned_missing = True
                self._ctx.logger.warning(
                    "file_system_monitor.waiting_for_directory",
                    watch_path=self._settings.directory,
                )
            return
        if self._warned_missing:
            self._warned_missing = False
            self._ctx.logger.info(
                "file_system_monitor.directory_appeared", watch_path=self._settings.directory
            )
        if self._baseline_pending:
            # include_existing=false on the first start: what is there now is the baseline.
            self._baseline_pending = False
            for path, (signature, _mtime) in listing.items():
                self._committed[path] = signature
                self._emitted[path] = signature
            return
        # Files that disappeared leave every map (the checkpoint stays bounded).
        for table in (self._committed, self._emitted, self._settling):
            for path in [path for path in table if path not in listing]:
                del table[path]
        next_settle: float | None = None
        # Oldest change first, so events follow the order files landed in.
        for path, (signature, mtime) in sorted(listing.items(), key=_landing_order):
            if self._emitted.get(path) == signature:
                self._settling.pop(path, None)
                continue
            waiting = self._settling.get(path)
            if waiting is None or waiting[0] != signature:
                self._settling[path] = (signature, now)
                since = now
            else:
                since = waiting[1]
            if now - since >= self._settings.settle_seconds:
                del self._settling[path]
                self._ready.append(self._item(path, signature, mtime))
                self._emitted[path] = signature
            else:
                ready_at = since + self._settings.settle_seconds
                next_settle = ready_at if next_settle is None else min(next_settle, ready_at)
        if next_settle is not None:
            # Look again as soon as a settling file may be ready, not a whole interval later.
            self._next_scan = min(self._next_scan, next_settle)

    def _item(self, path: str, signature: Signature, mtime: float) -> SourceItem:
        size, mtime_ns = signature
        event = "modified" if path in self._emitted else "created"
        return SourceItem(
            value={
                "path": path,
                "name": os.path.basename(path),
                "size": size,
                "mtime": mtime,
                "event": event,
            },
            item_id=f"{path}|{size}|{mtime_ns}",
            event_type=event,
        )


def _list_files(settings: _Settings) -> dict[str, tuple[Signature, float]] | None:
    """``{path: ((size, mtime_ns), mtime)}`` of the matching regular files, or None when the
    directory does not exist (runs in a thread)."""
    found: dict[str, tuple[Signature, float]] = {}
    pending = [settings.directory]
    first = True
    while pending:
        directory = pending.pop()
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            if first:
                return None
            continue  # a subdirectory removed while scanning
        except (NotADirectoryError, PermissionError):
            if first:
                raise
            continue
        first = False
        for entry in entries:
            name = entry.name
            if name.startswith(".") and not settings.hidden_allowed:
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    if settings.recursive:
                        pending.append(entry.path)
                    continue
                info = entry.stat()
            except (FileNotFoundError, PermissionError):
                continue  # removed (or unreadable) between listing and stat
            if not stat.S_ISREG(info.st_mode):
                continue
            if settings.match_relative:
                subject = os.path.relpath(entry.path, settings.directory).replace(os.sep, "/")
            else:
                subject = name
            if not fnmatch.fnmatch(subject, settings.pattern):
                continue
            found[entry.path] = ((info.st_size, info.st_mtime_ns), info.st_mtime_ns / 1e9)
    return found


def _settings(config: dict[str, Any]) -> _Settings:
    watch_path = required_str(config, "watch_path")
    directory = Path(os.path.abspath(os.path.expanduser(watch_path)))
    if directory.exists():
        if not directory.is_dir():
            raise config_error("watch_path", f"is not a directory: {directory}")
    elif not directory.parent.is_dir():
        raise config_error(
            "watch_path",
            f"does not exist, and neither does its parent directory: {directory}",
        )
    pattern = config.get("file_pattern")
    if pattern is None:
        pattern = "*"
    if not isinstance(pattern, str) or not pattern:
        raise config_error(
            "file_pattern", f"must be a non-empty glob string, got {json_type(pattern)}"
        )
    return _Settings(
        directory=str(directory),
        pattern=pattern,
        match_relative="/" in pattern,
        hidden_allowed=pattern.startswith("."),
        recursive=optional_bool(config, "recursive"),
        poll_interval=optional_number(config, "poll_interval", 0.5, exclusive=True),
        settle_seconds=optional_number(config, "settle_seconds", 0.2),
        include_existing=optional_bool(config, "include_existing", default=True),
    )


def _restore(checkpoint: Any) -> dict[str, Signature]:
    """The committed map from a checkpoint; entries that do not look right are ignored (the
    worst outcome is that their files are emitted again)."""
    committed: dict[str, Signature] = {}
    if not isinstance(checkpoint, dict):
        return committed
    for path, state in checkpoint.items():
        with contextlib.suppress(TypeError, ValueError):
            size, mtime_ns = state
            if isinstance(path, str) and isinstance(size, int) and isinstance(mtime_ns, int):
                committed[path] = (size, mtime_ns)
    return committed


def _landing_order(entry: tuple[str, tuple[Signature, float]]) -> tuple[int, str]:
    path, ((_size, mtime_ns), _mtime) = entry
    return mtime_ns, path


def _parse_item_id(item_id: str) -> tuple[str, Signature]:
    path, size, mtime_ns = item_id.rsplit("|", 2)
    return path, (int(size), int(mtime_ns))
