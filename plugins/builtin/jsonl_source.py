"""``jsonl_source``: a Streaming source reading JSON Lines files.

Config:
    path (str, required): A JSON Lines file, or a directory whose ``*.jsonl`` files are read
        one after the other in sorted name order (hidden files are skipped).
    follow (bool): When false (the default) the source is exhausted at the end of the last
        file. When true it keeps waiting for more lines and, for a directory, new files
        (whose names must sort after the file being read; earlier names are not looked at
        again). A missing ``path`` is waited for in follow mode; otherwise it is a
        ``FileNotFoundError`` (an I/O error: the engine's retry policy applies).
    poll_interval (number > 0): Seconds between looks for new data in follow mode
        (default 0.2).

Items:
    Each non-blank line is one item; its ``value`` is the line's JSON object. ``item_id`` is
    ``"{file name}:{byte offset of the line's start}"``; ``event_type`` is empty. A line that
    is not a JSON object (malformed JSON, another JSON type, text that is not UTF-8, NaN or
    Infinity) is ``PluginExecutionFailed`` naming the file and line number.

    The last line of a file needs no newline. In follow mode an unterminated last line is
    taken to be still being written and waits for its newline, unless a later file exists.

Delivery: at least once, in file and line order. Lines are read with buffered I/O in a worker
thread, up to ``max_items`` per batch.

Files: ``path`` must resolve inside the worker's file roots and not be one of the engine's
own files (:mod:`plugins.builtin._files`, ``ORCHESTRATOR_FILE_ROOTS``), else opening the
source fails with ``PluginExecutionFailed`` naming it. It is checked again at every look for
files (a path that did not exist yet may appear as a link), and files are opened without
following a final symbolic link: in a directory, links and anything but regular files are
skipped.

Checkpoint:
    ``{"file": file name, "offset": byte offset}``, the position just after the last
    committed line (``None`` before the first commit when there was no checkpoint). Commit
    advances it to the end of the committed items (each item's end is tracked), so a reopen
    resumes exactly after the last committed line: uncommitted lines are read again. If the
    checkpoint's file is gone, reading resumes with the next file name after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import IO, Any

from pydantic import Field

from plugins._context import PluginContext
from plugins._source import Source, SourceBase, SourceItem, source_plugin
from plugins.builtin._common import data_error, json_type, loads_strict
from plugins.builtin._files import checked_path, open_regular
from plugins.builtin._models import NonEmptyStr, PluginConfig, PositiveSeconds

SUFFIX = ".jsonl"


class JsonlSourceConfig(PluginConfig):
    """Configuration of the ``jsonl_source`` source."""

    path: NonEmptyStr = Field(
        description="A JSON Lines file, or a directory whose *.jsonl files are read in name order."
    )
    follow: bool = Field(
        False, description="Keep waiting for more lines (and new files) at the end."
    )
    poll_interval: PositiveSeconds = Field(
        0.2, description="Seconds between looks for new data in follow mode."
    )


@source_plugin("jsonl_source", config=JsonlSourceConfig, replays=True, passes_model=True)
async def open_jsonl_source(
    config: JsonlSourceConfig, checkpoint: Any, ctx: PluginContext
) -> Source:
    """Items from a JSON Lines file or a directory of them, resumable by byte offset."""
    configured, follow, poll_interval = config.path, config.follow, config.poll_interval
    path, exists, directory_mode = await asyncio.to_thread(_locate, configured)
    if not exists:
        if not follow:
            raise FileNotFoundError(f"jsonl_source: no such file or directory: {path}")
        ctx.logger.warning("jsonl_source.waiting_for_path", path=str(path))
    return JsonlSource(configured, path, directory_mode, follow, poll_interval, checkpoint, ctx)


def _locate(configured: str) -> tuple[Path, bool, bool]:
    """(resolved path, whether it exists, whether it is read as a directory). A path that
    does not exist yet is a directory unless its name ends in ``.jsonl``.

    Raises:
        PluginError: ``PluginExecutionFailed`` when the file policy refuses the path.
    """
    path = _checked(configured)
    if path.exists():
        return path, True, path.is_dir()
    return path, False, path.suffix != SUFFIX


def _checked(configured: str) -> Path:
    return checked_path(os.path.expanduser(configured), key="config 'path'")


class JsonlSource(SourceBase):
    """The open source; see the module documentation."""

    def __init__(
        self,
        configured: str,
        path: Path,
        directory_mode: bool,
        follow: bool,
        poll_interval: float,
        checkpoint: Any,
        ctx: PluginContext,
    ) -> None:
        self._configured = configured
        self._path = path
        self._directory_mode = directory_mode
        self._follow = follow
        self._poll_interval = poll_interval
        self._ctx = ctx
        self._committed = _restore(checkpoint)
        self._current: str | None = None  # file being read
        self._position = 0  # byte offset after the last line read from it
        self._handle: IO[bytes] | None = None
        self._ends: dict[str, tuple[str, int]] = {}  # item id -> (file, offset after it)
        self._done = False
        self._buffer: list[SourceItem] = []  # read from the file, not yet returned
        self._inflight: asyncio.Future[tuple[list[SourceItem], bool]] | None = None
        if self._committed is not None:
            name, offset = self._committed
            if not directory_mode and name != path.name:
                ctx.logger.warning(
                    "jsonl_source.checkpoint_ignored",
                    reason="the checkpoint names another file",
                    checkpoint_file=name,
                    path=str(path),
                )
                self._committed = None
            else:
                self._current, self._position = name, offset

    async def read(self, max_items: int, max_wait: float) -> list[SourceItem]:
        count = max(max_items, 1)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(max_wait, 0.0)
        while True:
            if self._buffer or self._done:
                batch, self._buffer = self._buffer[:count], self._buffer[count:]
                return batch
            if self._inflight is None:
                self._inflight = asyncio.ensure_future(asyncio.to_thread(self._read_batch, count))
            # Shielded: if this read is cancelled, the thread's lines are not lost; the next
            # read returns them (the file position has already moved past them).
            items, at_end = await asyncio.shield(self._inflight)
            self._inflight = None
            self._buffer.extend(items)
            if at_end and not self._follow:
                self._done = True
            if self._buffer or self._done:
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            await asyncio.sleep(min(self._poll_interval, remaining))

    async def commit(self, items: list[SourceItem]) -> None:
        best = self._committed
        for item in items:
            end = self._ends.pop(item.item_id, None)
            if end is not None and (best is None or end > best):
                best = end
        self._committed = best

    def checkpoint(self) -> Any:
        if self._committed is None:
            return None
        name, offset = self._committed
        return {"file": name, "offset": offset}

    @property
    def exhausted(self) -> bool:
        return self._done and not self._buffer

    async def close(self) -> None:
        if self._inflight is not None:
            with contextlib.suppress(Exception):
                await self._inflight  # the thread uses the handle: let it finish first
            self._inflight = None
        if self._handle is not None:
            handle, self._handle = self._handle, None
            await asyncio.to_thread(handle.close)

    # --- reading (in a worker thread) -----------------------------------------------------

    def _read_batch(self, max_items: int) -> tuple[list[SourceItem], bool]:
        """Up to ``max_items`` items, and whether the end of the data was reached."""
        items: list[SourceItem] = []
        while len(items) < max_items:
            handle = self._open_current()
            if handle is None:
                return items, True
            assert self._current is not None
            start = self._position
            line = handle.readline()
            if not line or (not line.endswith(b"\n") and self._follow):
                following = self._next_file(self._current)
                if following is None:
                    handle.seek(start)  # an unterminated line may still be being written
                    return items, True
                if line:  # a later file exists, so this last line is complete
                    self._take(line, start, items)
                    continue
                self._switch_to(following)
                continue
            self._take(line, start, items)
        return items, False

    def _take(self, line: bytes, start: int, items: list[SourceItem]) -> None:
        assert self._current is not None
        self._position = start + len(line)
        if not line.strip():
            return
        name = self._current
        try:
            value = loads_strict(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise self._line_error(start, f"not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise self._line_error(start, f"is a JSON {json_type(value)}, not an object")
        item_id = f"{name}:{start}"
        self._ends[item_id] = (name, self._position)
        items.append(SourceItem(value=value, item_id=item_id))

    def _open_current(self) -> IO[bytes] | None:
        if self._handle is not None:
            return self._handle
        if self._current is None:
            names = self._names()
            if not names:
                return None
            self._current, self._position = names[0], 0
        try:
            handle = open_regular(self._file_path(self._current), key="config 'path'")
        except FileNotFoundError:
            # The file being read (or the checkpoint's) is gone: go on with the next one.
            following = self._next_file(self._current)
            if following is None:
                return None
            self._switch_to(following)
            return self._open_current()
        if self._position:
            handle.seek(self._position)
        self._handle = handle
        return handle

    def _switch_to(self, name: str) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self._current, self._position = name, 0

    def _next_file(self, current: str) -> str | None:
        if not self._directory_mode:
            return None
        return next((name for name in self._names() if name > current), None)

    def _names(self) -> list[str]:
        if _checked(self._configured) != self._path:  # it became (or leads through) a link
            raise data_error(
                f"config 'path' {self._configured!r} no longer resolves to {self._path}; "
                "refusing to follow it elsewhere",
                path=self._configured,
            )
        if not self._directory_mode:
            return [self._path.name] if self._path.is_file() else []
        try:
            entries = list(os.scandir(self._path))
        except FileNotFoundError:
            return []
        return sorted(
            entry.name
            for entry in entries
            if entry.name.endswith(SUFFIX)
            and not entry.name.startswith(".")
            and entry.is_file(follow_symlinks=False)
        )

    def _file_path(self, name: str) -> Path:
        return self._path / name if self._directory_mode else self._path

    def _line_error(self, start: int, problem: str) -> Exception:
        assert self._current is not None
        path = self._file_path(self._current)
        line_number = _line_number(path, start)
        return data_error(
            f"{path}: line {line_number} {problem}", file=self._current, line=line_number
        )


def _line_number(path: Path, offset: int) -> int:
    """The 1-based number of the line starting at byte ``offset`` of ``path``."""
    count = 1
    with contextlib.suppress(OSError), open(path, "rb") as handle:
        remaining = offset
        while remaining > 0:
            chunk = handle.read(min(remaining, 1 << 20))
            if not chunk:
                break
            count += chunk.count(b"\n")
            remaining -= len(chunk)
    return count


def _restore(checkpoint: Any) -> tuple[str, int] | None:
    if not isinstance(checkpoint, dict):
        return None
    name, offset = checkpoint.get("file"), checkpoint.get("offset")
    if isinstance(name, str) and name and isinstance(offset, int) and offset >= 0:
        return name, offset
    return None
