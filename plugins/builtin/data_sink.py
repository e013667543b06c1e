"""``data_sink``: write records to a JSON, JSON Lines or CSV file, atomically.

Config:
    path (str, optional): The file to write. Parent directories are created. The file is
        replaced in one step (temporary file + rename), so readers never see a partial file,
        and the same records always give the same bytes: retrying is safe. Without it (the
        spec's Quick Start configures nothing) the sink writes
        ``<data dir>/outputs/<execution>/<node id>.<format>`` (``.jsonl`` unless ``format``
        says otherwise), where ``<data dir>`` is ``ORCHESTRATOR_DATA_DIR`` or
        ``~/.local/share/plugin-orchestrator`` on the worker and ``<execution>`` the
        execution id with every character other than letters, digits, ``_``, ``.`` and
        ``-`` replaced by ``_`` (``quickstart/run-1a2b`` gives ``quickstart_run-1a2b``).
        The output's ``path`` says where.
    format (str, optional): ``"json"`` (a list, indented 2), ``"jsonl"`` (one object per line)
        or ``"csv"`` (RFC 4180, CRLF line endings); default from the extension (``.json``,
        ``.jsonl``/``.ndjson``, ``.csv``), ``jsonl`` without a ``path``.
    delimiter (str, optional): CSV delimiter, one character (default ``","``).
    csv_escape_formulas (bool, optional): Default true: a CSV cell (a header or a string
        value) that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a
        ``'`` in front, so a spreadsheet shows it as text instead of running it as a formula
        (CSV injection, as OWASP describes it). JSON numbers are written as they are. Set it
        to false when the file is read by programs that want the text unchanged; reading
        the file back with ``data_source`` keeps the quote.

    CSV files get a header of every key in first-seen order; a record lacking a key gets an
    empty cell, null is an empty cell, booleans are ``true``/``false``, and lists and objects
    are written as JSON. No records give an empty file.

Streaming: in a stream the sink is called once per micro-batch and *appends* each batch to
the file. The first batch a stream writes replaces what the file held. A journal beside the
file (``.{name}.batches``, 24 bytes per batch; see :mod:`plugins.builtin._batch_journal`)
records where each batch began and ended: a batch the worker died writing is cut back before
the next write, and when the source replays from its checkpoint (``SourceSpec.replays``:
generators, ``data_source``, ``jsonl_source``, ``file_system_monitor``) a batch that comes
again after a crash first cuts the file back to where it began. So with those sources the file
holds every item exactly once, in order. Sources that acknowledge upstream (Redis, NATS, MQTT,
Kafka) redeliver only what they never acknowledged: nothing committed is cut back, and after
a crash the file can hold a few items twice (at least once). One sink node per file. CSV
columns are fixed by the first batch: a later record with another key fails the stream
(``PluginExecutionFailed`` naming the keys). ``json`` cannot be appended to (the file is one
array) and is refused with ``InvalidConfiguration``: use ``jsonl`` or ``csv``. Readers may see
the last batch half-written until it is finished or cut back. Outside a stream (batch modes,
EventDriven passes) the file is replaced as described above.

Inputs:
    ``inputs["records"]`` if it is a list; else the first input value that is an object with a
    ``"records"`` list (an upstream node's output) or a list itself. In a stream, the items of
    every input, concatenated.

Files: ``path`` must resolve inside the worker's file roots (the data directory's
``outputs`` always is one) and not be one of the engine's own files
(:mod:`plugins.builtin._files`, ``ORCHESTRATOR_FILE_ROOTS``), else the node fails with
``PluginExecutionFailed`` naming the path and nothing is written. A final symbolic link is
resolved and checked like the rest of the path; in a stream the file and its journal are
opened without following one.

Output:
    ``path`` (str, as configured; the absolute path written when none is), ``count``
    (records written), ``sha256`` (hex digest of the file's bytes), ``bytes`` (file size).
    In a stream, of this batch: ``count`` and ``bytes`` (appended), ``sha256`` (of the
    appended bytes), plus ``batch`` (its number) and ``file_bytes`` (the file's size after
    it).

Errors:
    Bad configuration is ``InvalidConfiguration`` naming the key; no records in the inputs is
    ``PluginExecutionFailed``; I/O errors (``OSError``) propagate and are retried.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import Field

from plugins._context import PluginContext
from plugins._plugin import PluginBase
from plugins.builtin._batch_journal import append_batch
from plugins.builtin._common import (
    atomic_write,
    config_error,
    data_error,
    file_format,
    find_records,
    sha256_hex,
)
from plugins.builtin._files import checked_path, outputs_directory
from plugins.builtin._models import (
    DELIMITER_DESCRIPTION,
    Delimiter,
    NonEmptyStr,
    PluginConfig,
    RecordFormat,
)
from plugins.builtin._streams import collect_items


class DataSinkConfig(PluginConfig):
    """Configuration of ``data_sink``."""

    path: NonEmptyStr | None = Field(
        None,
        description="The file to write (replaced atomically; parent directories are created); "
        "default: <data dir>/outputs/<execution>/<node id>.jsonl.",
    )
    format: RecordFormat | None = Field(
        None,
        description="'json', 'jsonl' or 'csv'; default from the extension (.json, "
        ".jsonl/.ndjson, .csv).",
    )
    delimiter: Delimiter = Field(",", description=DELIMITER_DESCRIPTION)
    csv_escape_formulas: bool = Field(
        True,
        description="Put a ' before CSV cells starting with =, +, -, @, tab or carriage "
        "return, so spreadsheets do not run them as formulas.",
    )


class DataSink(PluginBase):
    """Write the records in the inputs to a JSON, JSON Lines or CSV file, atomically."""

    plugin_id = "data_sink"
    Config = DataSinkConfig

    def run(
        self, inputs: dict[str, Any], config: DataSinkConfig, ctx: PluginContext
    ) -> dict[str, Any]:
        """Write the records.

        Args:
            inputs: The node's inputs; records are found as the module documentation says.
            config: See the module documentation.
            ctx: The call's context.

        Returns:
            ``{"path": str, "count": n, "sha256": hex, "bytes": size}``.

        Raises:
            PluginError: ``InvalidConfiguration`` naming the bad key, or
                ``PluginExecutionFailed`` when there are no records or the file policy
                refuses the path.
            OSError: The file cannot be written.
        """
        configured = config.path
        written_format = file_format(config.format, configured) or "jsonl"
        delimiter, escape = config.delimiter, config.csv_escape_formulas
        if configured is None:
            path = str(default_output(ctx, written_format))
            target = checked_path(path, key="the default output")
        else:
            path = configured
            target = checked_path(path, key="config 'path'")
        if ctx.stream_batch is not None:
            items = collect_items(inputs)
            return _append(target, path, written_format, items, delimiter, escape, ctx)
        records = find_records(inputs)

        if written_format == "csv":
            data = _csv_bytes(records, delimiter, escape)
        elif written_format == "jsonl":
            data = "".join(_dumps(record, None) + "\n" for record in records).encode()
        else:
            data = (_dumps(records, 2) + "\n").encode()

        atomic_write(target, data)
        digest = sha256_hex(data)
        ctx.logger.info(
            "data_sink.written",
            path=path,
            format=written_format,
            count=len(records),
            bytes=len(data),
        )
        return {"path": path, "count": len(records), "sha256": digest, "bytes": len(data)}


data_sink_plugin = DataSink().as_plugin()


def _append(
    path: Path,
    shown: str,
    file_format: str,
    records: list[dict[str, Any]],
    delimiter: str,
    escape: bool,
    ctx: PluginContext,
) -> dict[str, Any]:
    """Streaming: append this batch to ``path`` (checked; ``shown`` as the output names it)
    exactly once (see the module docs)."""
    batch = ctx.stream_batch
    assert batch is not None
    if file_format == "json":
        raise config_error(
            "format",
            "'json' writes one array, which cannot be appended to batch by batch in a "
            "Streaming workflow; use 'jsonl' or 'csv'",
        )

    def render(handle: BinaryIO, offset: int) -> bytes:
        if file_format == "jsonl":
            return "".join(_dumps(record, None) + "\n" for record in records).encode()
        if offset == 0:
            return _csv_bytes(records, delimiter, escape)
        columns = _csv_columns(handle, delimiter)
        return _csv_rows(records, columns, delimiter, escape, f"{path} (batch {batch})")

    stream = f"{ctx.execution_id}/{ctx.node_id}"
    offset, data = append_batch(path, stream, batch, render, replays=ctx.stream_replays)
    ctx.logger.info(
        "data_sink.appended", path=shown, batch=batch, count=len(records), bytes=len(data)
    )
    return {
        "path": shown,
        "count": len(records),
        "sha256": sha256_hex(data),
        "bytes": len(data),
        "batch": batch,
        "file_bytes": offset + len(data),
    }


def default_output(ctx: PluginContext, file_format: str) -> Path:
    """Where a sink without ``path`` writes: ``<data dir>/outputs/<execution>/<node>.<ext>``."""
    return (
        outputs_directory() / execution_directory(ctx.execution_id) / f"{ctx.node_id}.{file_format}"
    )


def execution_directory(execution_id: str) -> str:
    """``execution_id`` as one safe directory name (``/`` and other characters to ``_``; never
    hidden, ``.`` or ``..``; long ids are cut and keep a digest, so names stay distinct)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", execution_id)
    if name.startswith("."):
        name = "_" + name
    if len(name) > _MAX_NAME:
        name = f"{name[: _MAX_NAME - 17]}-{sha256_hex(execution_id.encode())[:16]}"
    return name


#: The longest directory name made from an execution id (file systems allow 255 bytes).
_MAX_NAME = 200


def _dumps(value: Any, indent: int | None) -> str:
    try:
        return json.dumps(value, indent=indent, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise data_error(f"records cannot be written as JSON: {exc}") from None


def _csv_bytes(records: list[dict[str, Any]], delimiter: str, escape: bool) -> bytes:
    if not records:
        return b""
    header = list(dict.fromkeys(key for record in records for key in record))
    buffer = io.StringIO(newline="")
    # The default "\r\n" line ending (RFC 4180) also makes the writer quote a lone "\r".
    writer = csv.writer(buffer, delimiter=delimiter)
    writer.writerow([_escaped(name, escape) for name in header])
    for record in records:
        writer.writerow([_cell(record.get(name), escape) for name in header])
    return buffer.getvalue().encode()


def _csv_columns(handle: BinaryIO, delimiter: str) -> list[str]:
    """The header row of a CSV file, as written (escaped)."""
    handle.seek(0)
    text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
    try:
        return next(csv.reader(text, delimiter=delimiter), [])
    finally:
        text.detach()


def _csv_rows(
    records: list[dict[str, Any]], columns: list[str], delimiter: str, escape: bool, where: str
) -> bytes:
    """Rows under an existing header; a key that is not a column is an error."""
    keys = {_escaped(key, escape): key for record in records for key in record}
    unknown = [key for written, key in keys.items() if written not in columns]
    if unknown:
        raise data_error(
            f"{where}: records have keys that are not columns of the file: "
            f"{', '.join(repr(key) for key in unknown[:10])}; in a stream the first batch "
            f"fixes the CSV columns ({', '.join(repr(c) for c in columns[:10])})"
        )
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter)
    sources = [keys.get(column) for column in columns]  # None: no record has that column
    for record in records:
        writer.writerow([_cell(None if k is None else record.get(k), escape) for k in sources])
    return buffer.getvalue().encode()


#: First characters that make a spreadsheet read a cell as a formula (OWASP, CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _escaped(text: str, escape: bool) -> str:
    return "'" + text if escape and text.startswith(_FORMULA_STARTS) else text


def _cell(value: Any, escape: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _escaped(value, escape)
    return _dumps(value, None)  # numbers, lists and objects: never a formula
