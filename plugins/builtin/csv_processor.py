"""``csv_processor``: summarise a CSV file (row count, columns, numeric statistics).

Config (all optional):
    path (str): The CSV file. Without it the path is ``inputs["path"]``, else
        ``inputs["file_path"]``, else the ``"path"`` of the first input value that is an object
        holding one (e.g. a ``file_validator`` output).
    delimiter (str): CSV delimiter, one character (default ``","``).
    output_dir (str): If set, the summary is also written, atomically, to
        ``<output_dir>/<file stem>.summary.json`` (directories are created; the same file gives
        the same bytes, so retrying is safe).

    A column is numeric when it has at least one non-empty value and every non-empty value
    (surrounding spaces ignored) is a finite decimal number such as ``3``, ``-0.5`` or
    ``1e3``. Integers stay integers in ``sum``/``min``/``max`` when every value is one. A
    short row's missing cells count as empty; a row with more fields than the header is an
    error. Blank lines are not rows.

Inputs:
    Only to find the path, as above.

Output:
    ``path`` (str), ``rows`` (int data rows), ``columns`` (list of header names), ``numeric``
    (``{column: {"count", "sum", "min", "max", "mean"}}`` for numeric columns; ``count`` is the
    number of non-empty values the statistics cover), and ``summary_path`` (str) when
    ``output_dir`` is set.

Errors:
    No path, or bad configuration: ``InvalidConfiguration`` naming the key. A missing file
    raises ``FileNotFoundError`` (retried). An empty file, a bad header, text that is not UTF-8
    or malformed CSV: ``PluginExecutionFailed`` naming the line.

Files: the CSV file (its path often comes from an event's data) and ``output_dir`` must
resolve inside the worker's file roots and not be one of the engine's own files
(:mod:`plugins.builtin._files`, ``ORCHESTRATOR_FILE_ROOTS``), else the node fails with
``PluginExecutionFailed`` naming the path and nothing is read or written. The CSV file is
opened without following a final symbolic link and must be a regular file.
"""

from __future__ import annotations

import decimal
import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import Field

from plugins._context import PluginContext
from plugins._plugin import PluginBase
from plugins.builtin._common import (
    atomic_write,
    check_header,
    data_error,
    find_path,
    read_csv_rows,
)
from plugins.builtin._files import checked_path
from plugins.builtin._models import DELIMITER_DESCRIPTION, Delimiter, NonEmptyStr, PluginConfig

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"[+-]?[0-9]+")


# Sums are exact decimal arithmetic (so "0.1" + "0.2" is 0.3), rounded to float at the end.
_DECIMAL = decimal.Context(prec=60)


@dataclass
class _Column:
    """Running statistics of one column; ``numeric`` turns false at the first non-number."""

    numeric: bool = True
    integral: bool = True
    count: int = 0
    total: Decimal = Decimal(0)
    low: Decimal | None = None
    high: Decimal | None = None

    def add(self, text: str) -> None:
        if not self.numeric:
            return
        text = text.strip()
        if not text:
            return
        if not _NUMBER.fullmatch(text) or not math.isfinite(float(text)):
            self.numeric = False
            return
        value = Decimal(text)
        if not _INTEGER.fullmatch(text):
            self.integral = False
        self.count += 1
        self.total = _DECIMAL.add(self.total, value)
        self.low = value if self.low is None else min(self.low, value)
        self.high = value if self.high is None else max(self.high, value)

    def summary(self) -> dict[str, Any] | None:
        if not self.numeric or self.low is None or self.high is None:
            return None
        mean = float(_DECIMAL.divide(self.total, self.count))
        if not (math.isfinite(float(self.total)) and math.isfinite(mean)):
            return None
        convert = int if self.integral else float
        return {
            "count": self.count,
            "sum": convert(self.total),
            "min": convert(self.low),
            "max": convert(self.high),
            "mean": mean,
        }


class CsvProcessorConfig(PluginConfig):
    """Configuration of ``csv_processor`` (all optional)."""

    path: NonEmptyStr | None = Field(
        None,
        description="The CSV file; default: input 'path', 'file_path', or the 'path' of an "
        "upstream output.",
    )
    delimiter: Delimiter = Field(",", description=DELIMITER_DESCRIPTION)
    output_dir: NonEmptyStr | None = Field(
        None, description="Also write the summary to <output_dir>/<file stem>.summary.json."
    )


class CsvProcessor(PluginBase):
    """Summarise a CSV file: rows, columns and sum/min/max/mean of numeric columns."""

    plugin_id = "csv_processor"
    Config = CsvProcessorConfig

    def run(
        self, inputs: dict[str, Any], config: CsvProcessorConfig, ctx: PluginContext
    ) -> dict[str, Any]:
        """Summarise the file.

        Args:
            inputs: The node's inputs; used to find the path when config has none.
            config: See the module documentation.
            ctx: The call's context.

        Returns:
            ``{"path", "rows", "columns", "numeric"}`` plus ``"summary_path"`` when ``output_dir``
            is configured.

        Raises:
            PluginError: ``InvalidConfiguration`` naming the bad key (or ``path`` when none is
                found), or ``PluginExecutionFailed`` for a malformed file.
            OSError: The file cannot be read (``FileNotFoundError`` included) or the summary
                cannot be written.
        """
        path_text, origin = find_path(inputs, config.path)
        delimiter, output_dir = config.delimiter, config.output_dir
        path = checked_path(path_text, key=origin)
        summary_path: Path | None = None
        if output_dir is not None:
            summary_name = f"{Path(path_text).stem}.summary.json"
            summary_path = checked_path(Path(output_dir) / summary_name, key="config 'output_dir'")

        rows_iter = read_csv_rows(path, delimiter, origin)
        first = next(rows_iter, None)
        if first is None:
            raise data_error(f"{path}: file is empty; expected a CSV header", path=path_text)
        header = first[1]
        problem = check_header(header)
        if problem is not None:
            raise data_error(f"{path}: {problem}", path=path_text)
        columns = [_Column() for _ in header]
        rows = 0
        for line, fields in rows_iter:
            if len(fields) > len(header):
                raise data_error(
                    f"{path} line {line} has {len(fields)} fields; the header has {len(header)}",
                    path=path_text,
                    line=line,
                )
            rows += 1
            for column, text in zip(columns, fields, strict=False):
                column.add(text)

        numeric: dict[str, Any] = {}
        for name, column in zip(header, columns, strict=True):
            stats = column.summary()
            if stats is not None:
                numeric[name] = stats
        result: dict[str, Any] = {
            "path": path_text,
            "rows": rows,
            "columns": header,
            "numeric": numeric,
        }

        if summary_path is not None:
            data = (json.dumps(result, indent=2, ensure_ascii=False) + "\n").encode()
            atomic_write(summary_path, data)
            result["summary_path"] = str(summary_path)

        ctx.logger.info(
            "csv_processor.summarised",
            path=path_text,
            rows=rows,
            columns=len(header),
            numeric_columns=sorted(numeric),
            summary_path=result.get("summary_path"),
        )
        return result


csv_processor_plugin = CsvProcessor().as_plugin()
