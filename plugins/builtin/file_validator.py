"""``file_validator``: check a file exists and, for CSV, that it is well formed.

An invalid file is a result, not an error: the plugin reports ``file_valid: false`` with the
reasons, so a Control connection such as ``file_valid == true`` can route on it.

Config (all optional):
    path (str): The file. Without it the path is ``inputs["path"]``, else
        ``inputs["file_path"]``, else the ``"path"`` of the first input value that is an object
        holding one (an upstream node's output).
    extensions (list of str): Allowed extensions, e.g. ``[".csv"]`` (case-insensitive; the dot
        is optional). Default (or an empty list): any.
    max_bytes (int >= 0): Largest allowed size.
    required_columns (list of str): Columns the CSV header must contain.
    min_rows (int >= 0): Fewest CSV data rows (blank lines are not rows).
    delimiter (str): CSV delimiter, one character (default ``","``).

    The file is parsed as CSV when ``required_columns`` or ``min_rows`` is set or its extension
    is ``.csv``. It is then invalid if it is not UTF-8 (a byte-order mark is allowed), is empty,
    has a header with an empty or repeated column name, has a row with more or fewer fields
    than the header, or is malformed (e.g. an unclosed quote). At most 10 row errors are listed.

Inputs:
    Only to find the path, as above.

Output:
    ``file_valid`` (bool), ``path`` (str), ``errors`` (list of str, empty when valid), ``rows``
    (int data rows, or null when not parsed as CSV), ``columns`` (list of header names, or
    null), ``bytes`` (int size, or null when the file is missing).

Errors:
    Only when there is no path at all (``InvalidConfiguration`` naming ``path``) or the config
    is malformed, or the path is refused. A missing file gives ``errors: ["file not found"]``;
    other OS errors while reading (permissions, I/O) propagate and are retried.

Files: the path (from the configuration or, often, from an event's data) must resolve inside
the worker's file roots and not be one of the engine's own files
(:mod:`plugins.builtin._files`, ``ORCHESTRATOR_FILE_ROOTS``), else the node fails with
``PluginExecutionFailed`` naming it and nothing is opened. The file is read without
following a final symbolic link; anything but a regular file is invalid.
"""

from __future__ import annotations

import csv
import io
import stat
from pathlib import Path
from typing import Any

from pydantic import Field

from plugins._context import PluginContext
from plugins._plugin import PluginBase
from plugins.builtin._common import check_header, find_path, utf8_error_line
from plugins.builtin._files import checked_path, open_regular
from plugins.builtin._models import (
    DELIMITER_DESCRIPTION,
    Delimiter,
    NonEmptyStr,
    NonNegativeInt,
    PluginConfig,
)

MAX_ROW_ERRORS = 10


class FileValidatorConfig(PluginConfig):
    """Configuration of ``file_validator`` (all optional)."""

    path: NonEmptyStr | None = Field(
        None,
        description="The file; default: input 'path', 'file_path', or the 'path' of an "
        "upstream output.",
    )
    extensions: list[NonEmptyStr] | None = Field(
        None, description='Allowed extensions, e.g. [".csv"] (case-insensitive; dot optional).'
    )
    max_bytes: NonNegativeInt | None = Field(None, description="Largest allowed size in bytes.")
    required_columns: list[NonEmptyStr] | None = Field(
        None, description="Columns the CSV header must contain."
    )
    min_rows: NonNegativeInt | None = Field(None, description="Fewest CSV data rows.")
    delimiter: Delimiter = Field(",", description=DELIMITER_DESCRIPTION)


class FileValidator(PluginBase):
    """Validate a file's existence, extension, size and (for CSV) structure."""

    plugin_id = "file_validator"
    Config = FileValidatorConfig

    def run(
        self, inputs: dict[str, Any], config: FileValidatorConfig, ctx: PluginContext
    ) -> dict[str, Any]:
        """Validate the file.

        Args:
            inputs: The node's inputs; used to find the path when config has none.
            config: See the module documentation.
            ctx: The call's context.

        Returns:
            ``{"file_valid", "path", "errors", "rows", "columns", "bytes"}``.

        Raises:
            PluginError: ``InvalidConfiguration`` naming the bad key, or when no path is found;
                ``PluginExecutionFailed`` when the file policy refuses the path.
            OSError: The file exists but cannot be read.
        """
        path_text, origin = find_path(inputs, config.path)
        path = checked_path(path_text, key=origin)
        errors: list[str] = []
        rows: int | None = None
        columns: list[str] | None = None
        size: int | None = None

        allowed = _normalise(config.extensions)
        suffix = Path(path_text).suffix
        if allowed and suffix.lower() not in allowed:
            errors.append(
                f"extension {suffix or '(none)'!r} is not one of {', '.join(sorted(allowed))}"
            )

        try:
            info = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            errors.append("file not found")
        else:
            if not stat.S_ISREG(info.st_mode):
                errors.append("not a regular file")
            else:
                size = info.st_size
                csv_name = suffix.lower() == ".csv"
                rows, columns = _check_file(path, origin, size, config, csv_name, errors)

        valid = not errors
        ctx.logger.info(
            "file_validator.checked",
            path=path_text,
            file_valid=valid,
            errors=len(errors),
            rows=rows,
        )
        return {
            "file_valid": valid,
            "path": path_text,
            "errors": errors,
            "rows": rows,
            "columns": columns,
            "bytes": size,
        }


file_validator_plugin = FileValidator().as_plugin()


def _check_file(
    path: Path,
    origin: str,
    size: int,
    config: FileValidatorConfig,
    csv_name: bool,
    errors: list[str],
) -> tuple[int | None, list[str] | None]:
    """The size and CSV checks; ``csv_name``: the path as given ends in ``.csv``."""
    if config.max_bytes is not None and size > config.max_bytes:
        errors.append(f"file is {size} bytes; the limit is {config.max_bytes}")
    wants_csv = config.required_columns is not None or config.min_rows is not None or csv_name
    if not wants_csv:
        return None, None
    rows, columns = _check_csv(path, origin, config.delimiter, errors)
    if columns is not None and config.required_columns:
        missing = [name for name in config.required_columns if name not in columns]
        if missing:
            errors.append(f"missing required columns: {', '.join(missing)}")
    if rows is not None and config.min_rows is not None and rows < config.min_rows:
        errors.append(f"file has {rows} data rows; at least {config.min_rows} required")
    return rows, columns


def _normalise(extensions: list[str] | None) -> set[str] | None:
    if extensions is None:
        return None
    return {ext.lower() if ext.startswith(".") else f".{ext.lower()}" for ext in extensions}


def _check_csv(
    path: Path, origin: str, delimiter: str, errors: list[str]
) -> tuple[int | None, list[str] | None]:
    """Parse the CSV; append problems to ``errors``; return (rows, columns) or Nones."""
    header: list[str] | None = None
    rows = 0
    row_errors = 0
    binary = open_regular(path, key=origin)
    with io.TextIOWrapper(binary, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter, strict=True)
        try:
            for fields in reader:
                if not fields:
                    continue
                if header is None:
                    header = fields
                    problem = check_header(header)
                    if problem is not None:
                        errors.append(problem)
                    continue
                rows += 1
                if len(fields) != len(header):
                    row_errors += 1
                    if row_errors <= MAX_ROW_ERRORS:
                        errors.append(
                            f"line {reader.line_num} has {len(fields)} fields; "
                            f"the header has {len(header)}"
                        )
        except UnicodeDecodeError:
            errors.append(f"not valid UTF-8 (line {utf8_error_line(path, origin)})")
            return None, None
        except csv.Error as exc:
            errors.append(f"malformed CSV at line {reader.line_num}: {exc}")
            return None, header
    if row_errors > MAX_ROW_ERRORS:
        errors.append(f"... and {row_errors - MAX_ROW_ERRORS} more rows with the wrong field count")
    if header is None:
        errors.append("file is empty; expected a CSV header")
        return 0, None
    return rows, header
