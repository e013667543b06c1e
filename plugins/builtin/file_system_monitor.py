"""``file_system_monitor``: a source of file events from a watched directory (a drop zone).

EventDriven's file drop zone: every file that lands in (or changes in) ``watch_path`` becomes
one event. The directory is polled (``os.scandir`` in a worker thread, so the event loop stays
free); no inotify, so it works the same on every platform and on network file systems.

Config:
    watch_path (str, required): The directory to watch. If it does not exist yet but its
        parent does, the source waits for it (a warning is logged once); if the parent does
        not exist either, opening fails with ``InvalidConfiguration`` naming ``watch_path``.
        A path that exists but is not a directory is also ``InvalidConfiguration``. It must
        resolve inside the worker's file roots and not be one of the engine's own files
        (:mod:`plugins.builtin._files`, ``ORCHESTRATOR_FILE_ROOTS``), else opening fails
        with ``PluginExecutionFailed`` naming it; it is checked again at every scan, and a
        zone that became a symbolic link fails the source the same way.
    create (bool): Create ``watch_path`` (and missing parents) when the source opens, if it
        does not exist (default false), so a new drop zone needs no setup step.
    file_pattern (str): A glob the file name must match (default ``"*"``); ``fnmatch``
        syntax (``*``, ``?``, ``[abc]``). A pattern holding ``/`` is matched against the path
        relative to ``watch_path`` instead. Names starting with ``.`` (hidden files, and the
        temporary files atomic writers rename into place) are ignored unless the pattern
        itself starts with ``.``.
    recursive (bool): Watch subdirectories too (default false). Symbolic links are never
        followed.
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
    item_id: ``"{path}|{inode}|{ctime_ns}|{size}|{mtime_ns}"``: the same file state has the
    same id, so the engine deduplicates a redelivery after a crash; any later change gets a
    new id.
    event_type: ``"created"`` (a path not seen before) or ``"modified"`` (a path already
    emitted whose file changed). After a restart every file past the checkpoint is
    ``"created"``.

What is a new file: the kernel sets a file's status change time (ctime) to now whenever the
file is created, written, renamed (moved into the zone, moved back), hard-linked or has its
mode or times changed, and no program can set it back. So a file that reappears (moved out
and back, re-created, copied in with its modification time preserved) or changes in any way
is a new event, even with the same size and modification time.

Delivery: at least once, in (ctime, path) order. A file is done only when its item is
committed; after a crash the source reopens with the last persisted checkpoint and emits
again every file the checkpoint does not cover, with the same ``item_id`` if it did not
change (the engine drops the duplicate). Files that land while nothing runs (crash, pause,
redeploy, continue-as-new) are found by the first scan after the reopen. Deleting a file
emits nothing. A file changed more than once between scans is one event (the latest state).

Checkpoint (bounded, whatever the zone holds):
    ``{"format": 2, "ctime_ns": W, "done": [digest, ...]}``: every file whose ctime is before
    ``W`` is done, and so are the files at or after ``W`` whose digest (the first 16 hex
    digits of the SHA-256 of the item id) is listed. ``W`` is the oldest ctime of a file
    still waiting (settling, or emitted and not committed), or one second before the last
    scan started when none waits; at most ``MAX_DONE_DIGESTS`` digests are kept (about
    19 KB), and a done file left out is emitted again after a reopen with the same id,
    which the engine deduplicates. Checkpoints of the earlier format (``{path: [size,
    mtime_ns]}``) are still read: files whose size and modification time match are done.

Security: only regular files reached without a symbolic link are events. Symbolic links (to
files or directories), FIFOs, sockets and devices are skipped with a warning (once per
path); subdirectories are opened relative to their parent without following links, so
swapping one for a link during a scan cannot lead outside the zone, and a file's resolved
path must still be inside the zone when it is emitted. The plugins that read the emitted
path open it later by name: a writer of the zone can still swap the file between the two.

Limits: ctime comes from the clock of the machine that stores the file. On a network file
system keep the clocks in sync: a server clock more than a second behind the worker's can
make a file that lands during a scan look older than the checkpoint. Likewise a step of the
system clock backwards while the source is stopped can hide files that land then. In
``recursive`` mode, a directory moved into the zone keeps its files' ctimes: its files are
events while the source runs, but if it lands while the source is stopped, files older than
the checkpoint are missed (move files, not directories, into a watched tree).

``read(max_items, max_wait)`` returns as soon as at least one item is ready, or ``[]`` after
``max_wait`` seconds. The source never ends (``exhausted`` is always false).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fnmatch
import hashlib
import os
import stat
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from plugins._context import PluginContext
from plugins._source import Source, SourceBase, SourceItem, source_plugin
from plugins.builtin._common import config_error, data_error
from plugins.builtin._files import checked_path
from plugins.builtin._models import (
    NonEmptyStr,
    NonNegativeSeconds,
    PluginConfig,
    PositiveSeconds,
)

#: The checkpoint format (the first one mapped every path to ``[size, mtime_ns]``).
CHECKPOINT_FORMAT = 2
#: At most this many digests of done files in a checkpoint (16 hex digits each).
MAX_DONE_DIGESTS = 1000
#: A file whose ctime is this much older than the start of a scan was in that scan's
#: listing: a rename into the zone sets the ctime and makes the entry visible in one step.
HORIZON_NS = 1_000_000_000
#: How many refused paths one warning names.
_NAMED_IN_WARNING = 10


@dataclass(frozen=True)
class FileState:
    """What a scan saw of a regular file; any change of the file changes ``ctime_ns``."""

    inode: int
    ctime_ns: int
    size: int
    mtime_ns: int


@dataclass
class _Tracked:
    """A file in the zone: its latest state and how far it got."""

    state: FileState
    status: Literal["settling", "emitted", "done"]
    since: float  # loop time this state was first seen
    known: bool  # the path was emitted (or done) before: its next event is "modified"


@dataclass
class _Listing:
    started_ns: int  # wall clock before the directory was read
    files: dict[str, FileState] = field(default_factory=dict)  # by path relative to the zone
    refused: list[str] = field(default_factory=list)  # links, FIFOs, sockets, devices


@dataclass(frozen=True)
class _Resume:
    """How the first scan tells files already handled from new ones."""

    baseline: bool = False  # include_existing=false on the very first start
    ctime_ns: int | None = None  # a checkpoint: files before this ctime are done
    done: frozenset[str] = frozenset()  # and these digests
    legacy: dict[str, tuple[int, int]] | None = None  # a first-format checkpoint

    def is_done(self, path: str, state: FileState) -> bool:
        if self.baseline:
            return True
        if self.legacy is not None:
            return self.legacy.get(path) == (state.size, state.mtime_ns)
        if self.ctime_ns is None:
            return False
        return state.ctime_ns < self.ctime_ns or _digest(_item_id(path, state)) in self.done


@dataclass(frozen=True)
class _Settings:
    configured: str  # watch_path as given (checked again at every scan)
    directory: str  # resolved and checked
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
    create: bool = Field(
        False, description="Create watch_path (and missing parents) if it does not exist."
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


@source_plugin(
    "file_system_monitor", config=FileSystemMonitorConfig, replays=True, passes_model=True
)
async def open_file_system_monitor(
    config: FileSystemMonitorConfig, checkpoint: Any, ctx: PluginContext
) -> Source:
    """Events for files created or changed in a watched directory (a polling drop zone)."""
    settings = await asyncio.to_thread(_settings, config)  # it looks at the file system
    if checkpoint is None:
        resume = _Resume(baseline=not settings.include_existing)
    else:
        resume = _restore(checkpoint)
    return FileSystemMonitor(settings, resume, checkpoint, ctx)


class FileSystemMonitor(SourceBase):
    """The open source; see the module documentation (never exhausted)."""

    def __init__(
        self, settings: _Settings, resume: _Resume, checkpoint: Any, ctx: PluginContext
    ) -> None:
        self._settings = settings
        self._ctx = ctx
        # Until the first scan has sorted the zone out, the checkpoint is the one given.
        self._resume: _Resume | None = resume
        self._given = checkpoint
        self._files: dict[str, _Tracked] = {}
        self._horizon_ns = 0
        self._ready: deque[SourceItem] = deque()
        self._refused: set[str] = set()
        self._next_scan = 0.0
        self._warned_missing = False

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
            relative, state = self._parse_item_id(item.item_id)
            tracked = self._files.get(relative)
            if tracked is not None and tracked.state == state:  # not changed since
                tracked.status = "done"

    def checkpoint(self) -> Any:
        if self._resume is not None:
            return self._given
        # Everything before the oldest file still waiting is done; the done files from
        # there on are listed (a file left out is emitted again, and deduplicated).
        watermark = self._horizon_ns
        for tracked in self._files.values():
            if tracked.status != "done":
                watermark = min(watermark, tracked.state.ctime_ns)
        done = sorted(
            (tracked.state.ctime_ns, self._digest(relative, tracked.state))
            for relative, tracked in self._files.items()
            if tracked.status == "done" and tracked.state.ctime_ns >= watermark
        )
        return {
            "format": CHECKPOINT_FORMAT,
            "ctime_ns": watermark,
            "done": [digest for _ctime, digest in done[:MAX_DONE_DIGESTS]],
        }

    async def close(self) -> None:
        self._ready.clear()

    # --- scanning -------------------------------------------------------------------------

    async def _scan(self) -> None:
        loop = asyncio.get_running_loop()
        listing = await asyncio.to_thread(_list_files, self._settings)
        now = loop.time()
        self._next_scan = now + self._settings.poll_interval
        if listing is None:
            self._directory_missing()
            return
        if self._warned_missing:
            self._warned_missing = False
            self._ctx.logger.info(
                "file_system_monitor.directory_appeared", watch_path=self._settings.directory
            )
        self._warn_refused(listing.refused)
        self._horizon_ns = listing.started_ns - HORIZON_NS
        for relative in [relative for relative in self._files if relative not in listing.files]:
            del self._files[relative]  # left the zone
        if self._resume is not None:
            self._sort_out_first_listing(listing, now, self._resume)
            self._resume = None
        ready, next_settle = self._settled(listing, now)
        confirmed = await asyncio.to_thread(_inside_zone, self._settings, ready)
        for relative, state in ready:
            tracked = self._files.get(relative)
            if tracked is None or tracked.state != state:
                continue  # changed while being confirmed: the next scan sees it
            if relative not in confirmed:
                del self._files[relative]  # swapped during the scan: looked at afresh
                continue
            self._ready.append(self._item(relative, state, tracked.known))
            tracked.status = "emitted"
            tracked.known = True
        if next_settle is not None:
            # Look again as soon as a settling file may be ready, not a whole interval later.
            self._next_scan = min(self._next_scan, next_settle)

    def _sort_out_first_listing(self, listing: _Listing, now: float, resume: _Resume) -> None:
        for relative, state in listing.files.items():
            path = self._path(relative)
            if resume.is_done(path, state):
                self._files[relative] = _Tracked(state, "done", now, known=True)
            elif resume.legacy is not None and path in resume.legacy:  # changed since
                self._files[relative] = _Tracked(state, "settling", now, known=True)

    def _settled(
        self, listing: _Listing, now: float
    ) -> tuple[list[tuple[str, FileState]], float | None]:
        """The files quiet for ``settle_seconds``, in (ctime, path) order, and when the
        next settling one may be ready."""
        ready: list[tuple[str, FileState]] = []
        next_settle: float | None = None
        for relative, state in listing.files.items():
            tracked = self._files.get(relative)
            if tracked is None or tracked.state != state:
                known = tracked is not None and tracked.known
                tracked = self._files[relative] = _Tracked(state, "settling", now, known)
            if tracked.status != "settling":
                continue
            if now - tracked.since >= self._settings.settle_seconds:
                ready.append((relative, state))
            else:
                ready_at = tracked.since + self._settings.settle_seconds
                next_settle = ready_at if next_settle is None else min(next_settle, ready_at)
        ready.sort(key=lambda entry: (entry[1].ctime_ns, entry[0]))
        return ready, next_settle

    def _directory_missing(self) -> None:
        if not self._warned_missing:
            self._warned_missing = True
            self._ctx.logger.warning(
                "file_system_monitor.waiting_for_directory", watch_path=self._settings.directory
            )

    def _warn_refused(self, refused: list[str]) -> None:
        new = sorted(set(refused) - self._refused)
        self._refused = set(refused)
        if new:
            self._ctx.logger.warning(
                "file_system_monitor.skipped_not_a_regular_file",
                watch_path=self._settings.directory,
                count=len(new),
                paths=new[:_NAMED_IN_WARNING],
                reason="symbolic links, FIFOs, sockets and devices are never events",
            )

    def _path(self, relative: str) -> str:
        return os.path.join(self._settings.directory, relative)

    def _digest(self, relative: str, state: FileState) -> str:
        return _digest(_item_id(self._path(relative), state))

    def _parse_item_id(self, item_id: str) -> tuple[str, FileState]:
        path, inode, ctime_ns, size, mtime_ns = item_id.rsplit("|", 4)
        relative = os.path.relpath(path, self._settings.directory)
        return relative, FileState(int(inode), int(ctime_ns), int(size), int(mtime_ns))

    def _item(self, relative: str, state: FileState, known: bool) -> SourceItem:
        path = self._path(relative)
        event = "modified" if known else "created"
        return SourceItem(
            value={
                "path": path,
                "name": os.path.basename(path),
                "size": state.size,
                "mtime": state.mtime_ns / 1e9,
                "event": event,
            },
            item_id=_item_id(path, state),
            event_type=event,
        )


def _item_id(path: str, state: FileState) -> str:
    return f"{path}|{state.inode}|{state.ctime_ns}|{state.size}|{state.mtime_ns}"


def _digest(item_id: str) -> str:
    return hashlib.sha256(item_id.encode("utf-8", "surrogateescape")).hexdigest()[:16]


# --- the file system (these run in a worker thread) -----------------------------------------


def _list_files(settings: _Settings) -> _Listing | None:
    """The matching regular files under the zone, or None when it does not exist.

    Every subdirectory is opened relative to its parent with ``O_NOFOLLOW``, and entries are
    looked at with ``lstat``: nothing here ever follows a symbolic link out of the zone.
    """
    listing = _Listing(started_ns=time.time_ns())
    if _checked(settings.configured) != Path(settings.directory):
        raise data_error(
            f"config 'watch_path' {settings.configured!r} no longer resolves to "
            f"{settings.directory} (a link put on the way?); refusing to watch elsewhere",
            watch_path=settings.configured,
        )
    try:
        root = os.open(settings.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise data_error(
            f"config 'watch_path' {settings.configured!r}: {settings.directory} became a "
            "symbolic link; refusing to follow it",
            watch_path=settings.configured,
        ) from None
    try:
        pending = [""]
        while pending:
            relative_dir = pending.pop()
            fd = _open_subdirectory(root, relative_dir) if relative_dir else root
            if fd is None:
                continue  # removed, unreadable, or replaced by a link since it was listed
            try:
                _list_directory(fd, relative_dir, settings, listing, pending)
            finally:
                if fd != root:
                    os.close(fd)
    finally:
        os.close(root)
    return listing


def _open_subdirectory(root: int, relative: str) -> int | None:
    fd = root
    try:
        for part in relative.split(os.sep):
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            if fd != root:
                os.close(fd)
            fd = child
    except OSError:
        if fd != root:
            os.close(fd)
        return None
    return fd


def _list_directory(
    fd: int, relative_dir: str, settings: _Settings, listing: _Listing, pending: list[str]
) -> None:
    with os.scandir(fd) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith(".") and not settings.hidden_allowed:
                continue
            relative = os.path.join(relative_dir, name) if relative_dir else name
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # removed (or unreadable) between listing and stat
            if stat.S_ISDIR(info.st_mode):
                if settings.recursive:
                    pending.append(relative)
                continue
            subject = relative.replace(os.sep, "/") if settings.match_relative else name
            if not fnmatch.fnmatch(subject, settings.pattern):
                continue
            if not stat.S_ISREG(info.st_mode):
                listing.refused.append(relative)
                continue
            listing.files[relative] = FileState(
                info.st_ino, info.st_ctime_ns, info.st_size, info.st_mtime_ns
            )


def _inside_zone(settings: _Settings, files: list[tuple[str, FileState]]) -> set[str]:
    """The files that are still the regular file listed and whose resolved path is inside
    the resolved zone (checked again just before they are emitted)."""
    zone = os.path.realpath(settings.directory)
    confirmed: set[str] = set()
    for relative, state in files:
        path = os.path.join(settings.directory, relative)
        try:
            info = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode) or info.st_ino != state.inode:
            continue
        if os.path.commonpath([zone, os.path.realpath(path)]) == zone:
            confirmed.add(relative)
    return confirmed


def _checked(watch_path: str) -> Path:
    return checked_path(os.path.expanduser(watch_path), key="config 'watch_path'")


def _settings(config: FileSystemMonitorConfig) -> _Settings:
    watch_path = config.watch_path
    directory = _checked(watch_path)
    if config.create and not directory.exists():
        directory.mkdir(parents=True, exist_ok=True)
        directory = _checked(watch_path)  # as created
    if directory.exists():
        if not directory.is_dir():
            raise config_error("watch_path", f"is not a directory: {directory}")
    elif not directory.parent.is_dir():
        raise config_error(
            "watch_path",
            f"does not exist, and neither does its parent directory: {directory}",
        )
    pattern = config.file_pattern
    return _Settings(
        configured=watch_path,
        directory=str(directory),
        pattern=pattern,
        match_relative="/" in pattern,
        hidden_allowed=pattern.startswith("."),
        recursive=config.recursive,
        poll_interval=config.poll_interval,
        settle_seconds=config.settle_seconds,
        include_existing=config.include_existing,
    )


def _restore(checkpoint: Any) -> _Resume:
    """How to resume from a checkpoint. A malformed one resumes from the start: the worst
    outcome is that files are emitted again (and deduplicated by their ids)."""
    if not isinstance(checkpoint, dict):
        return _Resume(ctime_ns=0)
    if checkpoint.get("format") == CHECKPOINT_FORMAT:
        ctime_ns = checkpoint.get("ctime_ns")
        done = checkpoint.get("done")
        if not isinstance(ctime_ns, int) or not isinstance(done, list):
            return _Resume(ctime_ns=0)
        return _Resume(ctime_ns=ctime_ns, done=frozenset(d for d in done if isinstance(d, str)))
    legacy: dict[str, tuple[int, int]] = {}
    for path, state in checkpoint.items():
        with contextlib.suppress(TypeError, ValueError):
            size, mtime_ns = state
            if isinstance(path, str) and isinstance(size, int) and isinstance(mtime_ns, int):
                legacy[path] = (size, mtime_ns)
    return _Resume(legacy=legacy)
