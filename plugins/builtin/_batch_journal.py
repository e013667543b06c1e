"""Appending a stream's batches to a file exactly once (``data_sink`` in Streaming mode).

Beside the file lives ``.{name}.batches``, its journal: a header line naming the stream (the
execution and the node), then one 16-byte record per batch written: the batch number
(:attr:`plugins.PluginContext.stream_batch`) and the file's size before the batch. Writing
batch ``n``:

1. If the journal belongs to another stream, or there is none, the file starts afresh: it is
   emptied and the journal gets the new header.
2. If the journal already holds batch ``n`` or a later one, the stream is replaying after a
   crash (it resumed from an earlier checkpoint): the file is cut back to its size before the
   first such batch, then those records are dropped.
3. The record ``(n, size)`` is appended to the journal and flushed to disk, then the batch's
   bytes are written at that size and flushed.

A crash at any step leaves a state that step 2 repairs when the batch comes again, so every
batch is in the file once. A reader of the file may see the last batch half-written, or cut
back after a crash until it is written again. The journal grows by 16 bytes per batch.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

_RECORD = struct.Struct(">QQ")  # batch number, file size before the batch

#: Renders a batch given the open file (to read what is there, e.g. a CSV header) and the
#: offset the batch starts at.
Render = Callable[[BinaryIO, int], bytes]


def journal_path(path: Path) -> Path:
    """Where the journal of ``path`` lives."""
    return path.with_name(f".{path.name}.batches")


def append_batch(path: Path, stream: str, batch: int, render: Render) -> tuple[int, bytes]:
    """Write batch number ``batch`` of ``stream`` to ``path`` exactly once.

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
        offset = _cut_back(journal, data, len(header), batch)
        journal.seek(0, os.SEEK_END)
        journal.write(_RECORD.pack(batch, offset))
        _sync(journal)
        chunk = render(data, offset)
        data.seek(offset)
        data.write(chunk)
        _sync(data)
    return offset, chunk


def _open(path: Path) -> BinaryIO:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    return os.fdopen(fd, "r+b")


def _sync(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _belongs_to(journal: BinaryIO, header: bytes) -> bool:
    journal.seek(0)
    return journal.read(len(header)) == header


def _cut_back(journal: BinaryIO, data: BinaryIO, start: int, batch: int) -> int:
    """The offset batch ``batch`` starts at, after cutting back a replay."""
    end = journal.seek(0, os.SEEK_END)
    count = (end - start) // _RECORD.size
    if start + count * _RECORD.size != end:
        journal.truncate(start + count * _RECORD.size)  # a record torn by a crash
    size = data.seek(0, os.SEEK_END)
    if count == 0 or _record(journal, start, count - 1)[0] < batch:
        return size  # a new batch: every earlier one is complete (the stream moved past it)
    low, high = 0, count - 1  # the first record of a batch numbered >= batch
    while low < high:
        middle = (low + high) // 2
        if _record(journal, start, middle)[0] >= batch:
            high = middle
        else:
            low = middle + 1
    offset = min(_record(journal, start, low)[1], size)  # never past the end: no hole
    # The file first: a crash between the two leaves records that cut it back again.
    data.truncate(offset)
    _sync(data)
    journal.truncate(start + low * _RECORD.size)
    _sync(journal)
    return offset


def _record(journal: BinaryIO, start: int, index: int) -> tuple[int, int]:
    journal.seek(start + index * _RECORD.size)
    number, offset = _RECORD.unpack(journal.read(_RECORD.size))
    return int(number), int(offset)
