"""Helpers shared by the built-in plugins: errors, input lookup, atomic writes, CSV.

Errors follow one rule. A configuration the plugin's model refuses, or that cannot be used
(``config_error``), raises ``PluginError(InvalidConfiguration)`` whose message names the key
(the models are in each plugin's module, their building blocks in
:mod:`plugins.builtin._models`). Input data that cannot be
used (no records, a record that is not an object, a malformed file) raises
``PluginError(PluginExecutionFailed)``: retrying would not help. Ordinary I/O exceptions such as
``FileNotFoundError`` propagate, so the engine's retry policy applies to them.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.base.errors import PluginError, PluginErrorCode
from plugins.builtin._files import open_regular

#: Record formats the source and sink understand, by file extension.
FORMATS_BY_EXTENSION = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}


def json_type(value: Any) -> str:
    """Name ``value``'s type the way JSON does (``integer``, ``string``, ``object``, ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def config_error(key: str, problem: str) -> PluginError:
    """An ``InvalidConfiguration`` error about config key ``key``."""
    return PluginError(
        PluginErrorCode.InvalidConfiguration, f"config '{key}' {problem}", {"key": key}
    )


def data_error(message: str, **details: Any) -> PluginError:
    """A ``PluginExecutionFailed`` error: the input data cannot be used."""
    return PluginError(PluginErrorCode.PluginExecutionFailed, message, details)


def file_format(configured: str | None, path: str | None) -> str | None:
    """The record format: ``configured`` if set, else the one of ``path``'s extension, else
    None (no path).

    Raises:
        PluginError: ``InvalidConfiguration`` naming ``path`` for an unknown extension.
    """
    if configured is not None:
        return configured
    if path is None:
        return None
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS_BY_EXTENSION:
        raise config_error(
            "path",
            f"has extension {suffix or '(none)'!r}; use .json, .jsonl, .ndjson or .csv, "
            "or set 'format'",
        )
    return FORMATS_BY_EXTENSION[suffix]


def check_records(records: list[Any], where: str) -> list[dict[str, Any]]:
    """Check every item of ``records`` is a JSON object; ``where`` names their origin."""
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise data_error(
                f"record {index} from {where} is {json_type(record)}, not an object",
                index=index,
            )
    return records


def find_records(inputs: dict[str, Any]) -> list[dict[str, Any]]:
    """The records a processing plugin works on.

    Looked up in this order: ``inputs["records"]`` if it is a list; otherwise the first input
    value that is either an object with a ``"records"`` list (an upstream node's output) or a
    list itself.

    Raises:
        PluginError: ``PluginExecutionFailed`` if no records are found or one is not an object.
    """
    direct = inputs.get("records")
    if isinstance(direct, list):
        return check_records(direct, "input 'records'")
    for name, value in inputs.items():
        if isinstance(value, dict) and isinstance(value.get("records"), list):
            return check_records(value["records"], f"input '{name}'")
        if isinstance(value, list):
            return check_records(value, f"input '{name}'")
    available = ", ".join(sorted(inputs)) or "none"
    raise data_error(
        "no records in the inputs: expected a 'records' list, an input holding "
        f"{{'records': [...]}}, or a list (inputs: {available})"
    )


def find_path(inputs: dict[str, Any], configured: str | None) -> tuple[str, str]:
    """The file a file plugin works on, and where it came from (for messages).

    Looked up in this order: ``configured`` (config ``path``); ``inputs["path"]``;
    ``inputs["file_path"]``; the ``"path"`` of the first input value that is an object
    holding one (an upstream node's output). Only the configuration is the definition
    author's; the others are data.

    Returns:
        ``(path, origin)``, e.g. ``("in.csv", "config 'path'")`` or
        ``("/zone/a.csv", "input 'file_watcher' path")``.

    Raises:
        PluginError: ``InvalidConfiguration`` naming ``path`` if none is found.
    """
    if configured is not None:
        return configured, "config 'path'"
    for key in ("path", "file_path"):
        value = inputs.get(key)
        if isinstance(value, str) and value:
            return value, f"input '{key}'"
    for name, value in inputs.items():
        if isinstance(value, dict):
            nested = value.get("path")
            if isinstance(nested, str) and nested:
                return nested, f"input '{name}' path"
    raise config_error(
        "path",
        "is not set and no input supplies a path (looked for inputs 'path', 'file_path' and "
        "an input object with a 'path')",
    )


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new, never a part.

    The bytes go to a temporary file in the same directory, are flushed to disk and renamed
    over ``path``. Parent directories are created. Same data, same file: safe to repeat.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o644
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Flush a directory entry change (a rename) to disk, where the platform allows it."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data`` as lower-case hex."""
    return hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> str:
    """``value`` as compact JSON with sorted keys: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads_strict(text: str) -> Any:
    """``json.loads`` that rejects ``NaN`` and ``Infinity``, which are not JSON."""
    return json.loads(text, parse_constant=_reject_constant)


def read_csv_rows(path: Path, delimiter: str, key: str) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line_number, fields)`` for each non-blank row of a UTF-8 CSV file.

    The first row yielded is the header. A UTF-8 byte-order mark is skipped. ``path`` is a
    path :func:`plugins.builtin._files.checked_path` returned (``key`` names its origin): it
    is opened without following a final symbolic link and must be a regular file.

    Raises:
        PluginError: ``PluginExecutionFailed`` for malformed CSV, text that is not UTF-8 or
            a path that is not a regular file.
        OSError: the file cannot be read (``FileNotFoundError`` included).
    """
    with io.TextIOWrapper(open_regular(path, key=key), encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter, strict=True)
        try:
            for row in reader:
                if row:
                    yield reader.line_num, row
        except UnicodeDecodeError:
            raise data_error(
                f"{path}: not valid UTF-8 (line {utf8_error_line(path, key)})", path=str(path)
            ) from None
        except csv.Error as exc:
            raise data_error(
                f"{path}: malformed CSV at line {reader.line_num}: {exc}", path=str(path)
            ) from None


def utf8_error_line(path: Path, key: str) -> int:
    """The line holding the first byte of ``path`` that is not UTF-8 (1 if it all is).

    Text is decoded in chunks, so a reader's own line count at the error is not exact.
    """
    with open_regular(path, key=key) as handle:
        data = handle.read()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return data.count(b"\n", 0, exc.start) + 1
    return 1


def check_header(header: list[str]) -> str | None:
    """Why ``header`` is not a usable CSV header, or None if it is."""
    seen: set[str] = set()
    for index, name in enumerate(header, start=1):
        if not name.strip():
            return f"header column {index} has an empty name"
        if name in seen:
            return f"header names column '{name}' twice"
        seen.add(name)
    return None


def safe_file_stem(text: str) -> str:
    """``text`` reduced to characters that are safe in a file name."""
    cleaned = "".join(char if char.isalnum() or char in "._-" else "_" for char in text)
    cleaned = cleaned.strip(".")
    return cleaned[:100] or "item"
