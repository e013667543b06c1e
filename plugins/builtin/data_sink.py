"""``data_sink``: write records to a JSON, JSON Lines or CSV file, atomically.

Config:
    path (str, required): The file to write. Parent directories are created. The file is
        replaced in one step (temporary file + rename), so readers never see a partial file,
        and the same records always give the same bytes: retrying is safe.
    format (str, optional): ``"json"`` (a list, indented 2), ``"jsonl"`` (one object per line)
        or ``"csv"`` (RFC 4180, CRLF line endings); default from the extension (``.json``,
        ``.jsonl``/``.ndjson``, ``.csv``).
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

Inputs:
    ``inputs["records"]`` if it is a list; else the first input value that is an object with a
    ``"records"`` list (an upstream node's output) or a list itself.

Output:
    ``path`` (str, as configured), ``count`` (records written), ``sha256`` (hex digest of the
    file's bytes), ``bytes`` (file size).

Errors:
    Bad configuration is ``InvalidConfiguration`` naming the key; no records in the inputs is
    ``PluginExecutionFailed``; I/O errors (``OSError``) propagate and are retried.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from pydantic import Field

from plugins._context import PluginContext
from plugins._registry import plugin
from plugins.builtin._common import (
    FORMATS_BY_EXTENSION,
    atomic_write,
    config_error,
    data_error,
    find_records,
    optional_bool,
    optional_delimiter,
    optional_str,
    required_str,
    sha256_hex,
)
from plugins.builtin._models import (
    DELIMITER_DESCRIPTION,
    Delimiter,
    NonEmptyStr,
    PluginConfig,
    RecordFormat,
)


class DataSinkConfig(PluginConfig):
    """Configuration of ``data_sink``."""

    path: NonEmptyStr = Field(
        description="The file to write (replaced atomically; parent directories are created)."
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


@plugin("data_sink", config=DataSinkConfig)
def data_sink_plugin(
    inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext
) -> dict[str, Any]:
    """Write the records in the inputs to a JSON, JSON Lines or CSV file, atomically.

    Args:
        inputs: The node's inputs; records are found as the module documentation says.
        config: See the module documentation.
        ctx: The call's context.

    Returns:
        ``{"path": str, "count": n, "sha256": hex, "bytes": size}``.

    Raises:
        PluginError: ``InvalidConfiguration`` naming the bad key, or ``PluginExecutionFailed``
            when there are no records.
        OSError: The file cannot be written.
    """
    path = required_str(config, "path")
    file_format = _format(config, path)
    delimiter = optional_delimiter(config)
    escape = optional_bool(config, "csv_escape_formulas", default=True)
    records = find_records(inputs)

    if file_format == "csv":
        data = _csv_bytes(records, delimiter, escape)
    elif file_format == "jsonl":
        data = "".join(_dumps(record, None) + "\n" for record in records).encode()
    else:
        data = (_dumps(records, 2) + "\n").encode()

    atomic_write(Path(path), data)
    digest = sha256_hex(data)
    ctx.logger.info(
        "data_sink.written", path=path, format=file_format, count=len(records), bytes=len(data)
    )
    return {"path": path, "count": len(records), "sha256": digest, "bytes": len(data)}


def _format(config: dict[str, Any], path: str) -> str:
    configured = optional_str(config, "format")
    if configured is not None:
        if configured not in {"json", "jsonl", "csv"}:
            raise config_error("format", f"must be 'json', 'jsonl' or 'csv', got {configured!r}")
        return configured
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS_BY_EXTENSION:
        raise config_error(
            "path",
            f"has extension {suffix or '(none)'!r}; use .json, .jsonl, .ndjson or .csv, "
            "or set 'format'",
        )
    return FORMATS_BY_EXTENSION[suffix]


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
