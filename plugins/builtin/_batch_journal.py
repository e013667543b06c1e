"""Appending a stream's batches to a file exactly once (``data_sink`` in Streaming mode).

Beside the file lives ``.{name}.batches``, its journal: a header line naming the stream (the
execution and the node), then one 24-byte record per batch written: the batch number
(:attr:`plugins.PluginContext.stream_batch`), the file's size before the batch, and its size
after it (all ones until the batch is on disk). Writing batch ``n``:

1. If the journal belongs to another stream, or there is none, the file starts afresh: it is
   emptied and the journal gets the new header.
2. If the last batch never finished (the worker died while writing it), the file is cut back
   to where it began: that batch was never committed, so its items come again.
3. If the source replays (:attr:`plugins.PluginContext.stream_replays`) and the journal
   already holds batch ``n`` or a later one, the stream resumed from an earlier checkpoint
   after a crash: the file is cut back to where the first such batch began. A source that
   does not replay redelivers only the items it never acknowledged, so nothing is cut back.
4. The record is appended and flushed to disk, then the batch's bytes are written at its
   offset and flushed, then the record is completed and flushed.

A crash at any step leaves a state that step 2 or 3 repairs when the batch comes again, so
every batch is in the file once (with a replaying source; at least once otherwise). A reader
may see the last batch half-written until it is finished or cut back. The journal grows by
24 bytes per batch.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

_RECORD = struct.Struct(">QQQ")  # batch number, file size before it, file size after it
_UNFINISHED = 2**64 - 1

#: Renders a batch given the open file (to read what is there, e.g. a CSV header) and the
#: offset the batch starts at.
Render = Callable[[BinaryIO, int], bytes]


def journal_path(path: Path) -> Path:
    """Where the journal of ``path`` lives."""
    return path.with_name(f".{path.name}.batches")


def append_batch(
    path: Path, stream: str, batch: int, render: Render, *, replays: bool
) -> tuple[int, bytes]:
    """Write batch number ``batch`` of ``stream`` to ``path`` once (see the module docs).

    Returns:
        The offset the batch starts at, and the bytes written there.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (json.dumps({"stream": stream}, ensure_ascii=False) + "\n").encode()
    with _open(journal_path(path)) as journal, _open(path) as data:
        if not _belongs_to(journal, header):
            data.truncate(0)
            _sync(data)
            journal.truncate(0)
            journal.write(header)
            _sync(journal)
        records = _Records(journal, len(header))
        offset = _cut_back(records, data, batch if replays else None)
        index = records.append(batch, offset)
        chunk = render(data, offset)
        data.seek(offset)
        data.write(chunk)
        _sync(data)
        records.finish(index, offset + len(chunk))
    return offset, chunk


def _cut_back(records: _Records, data: BinaryIO, replayed: int | None) -> int:
    """Cut the file back past an unfinished batch and, when ``replayed`` is a number the
    journal holds, past the batches from it on; return where the next batch starts."""
    size = data.seek(0, os.SEEK_END)
    keep = records.count
    if keep and records.get(keep - 1)[2] == _UNFINISHED:
        keep -= 1
    if replayed is not None:  # the batches from ``replayed`` on are the journal's last ones
        while keep and records.get(keep - 1)[0] >= replayed:
            keep -= 1
    end = records.get(keep - 1)[2] if keep else (records.get(0)[1] if records.count else size)
    end = min(end, size)  # never past the end: no hole
    if keep < records.count or end < size:
        # The file first: a crash between the two leaves records that cut it back again.
        data.truncate(end)
        _sync(data)
        records.truncate(keep)
    return end


class _Records:
    """The fixed-size records after the journal's header."""

    def __init__(self, journal: BinaryIO, start: int) -> None:
        self._journal = journal
        self._start = start
        end = journal.seek(0, os.SEEK_END)
        self.count = (end - start) // _RECORD.size
        if start + self.count * _RECORD.size != end:
            self.truncate(self.count)  # a record torn by a crash

    def get(self, index: int) -> tuple[int, int, int]:
        self._journal.seek(self._start + index * _RECORD.size)
        number, before, after = _RECORD.unpack(self._journal.read(_RECORD.size))
        return int(number), int(before), int(after)

    def append(self, number: int, before: int) -> int:
        self._journal.seek(self._start + self.count * _RECORD.size)
        self._journal.write(_RECORD.pack(number, before, _UNFINISHED))
        _sync(self._journal)
        self.count += 1
        return self.count - 1

    def finish(self, index: int, after: int) -> None:
        number, before, _ = self.get(index)
        self._journal.seek(self._start + index * _RECORD.size)
        self._journal.write(_RECORD.pack(number, before, after))
        _sync(self._journal)

    def truncate(self, count: int) -> None:
        self._journal.truncate(self._start + count * _RECORD.size)
        _sync(self._journal)
        self.count = count


def _open(path: Path) -> BinaryIO:
    """Open (or create) ``path`` for reading and writing, never through a final symbolic
    link (the sink checked the path it resolved; a link put there since is refused)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    return os.fdopen(fd, "r+b")


def _sync(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _belongs_to(journal: BinaryIO, header: bytes) -> bool:
    journal.seek(0)
    return journal.read(len(header)) == header
