"""``data_source``: produce records from a file, the configuration, or the inputs.

Config:
    path (str, optional): A file to read. ``.json`` holds a list of objects or
        ``{"records": [...]}``; ``.jsonl`` / ``.ndjson`` holds one object per line (blank lines
        are skipped); ``.csv`` is read with a header row, every value a string (a short row's
        missing values are null).
    format (str, optional): ``"json"``, ``"jsonl"`` or ``"csv"``; overrides the extension.
    delimiter (str, optional): CSV delimiter, one character (default ``","``).
    records (list of objects, optional): Inline records, used when ``path`` is not set
        (``path`` wins when both are).
    limit (int >= 0, optional): Keep at most this many records.

Inputs:
    Used only when neither ``path`` nor ``records`` is configured: ``inputs["records"]`` (a list
    of objects) if present, otherwise the whole inputs object as one record. With nothing
    configured and no inputs (the spec's Quick Start: an execution without input data, or a
    source in the long-running modes, which has no inputs) that is one empty record ``{}``,
    as a manual trigger emits one empty item: the pipeline runs once end to end and its sink
    writes a file. ``records: []`` gives no record at all.

Output:
    ``records`` (list of objects), ``count`` (int), ``source`` (the configured path,
    ``"inline"`` or ``"input"``).

As a source (EventDriven and Streaming Source nodes): the same records, one item or event
each, from the file or the inline ``records`` (with neither, the one empty record); then the
source is exhausted.

Files: ``path`` must resolve inside the worker's file roots (:mod:`plugins.builtin._files`,
``ORCHESTRATOR_FILE_ROOTS``) and not be one of the engine's own files; it is opened without
following a final symbolic link and must be a regular file. A refusal is
``PluginExecutionFailed`` naming the path.

Errors:
    A missing file raises ``FileNotFoundError`` (retried by the engine). Bad configuration is
    ``InvalidConfiguration`` naming the key; a file that is not valid JSON, JSON Lines or CSV,
    or holds something other than objects, is ``PluginExecutionFailed``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pydantic import Field

from plugins._context import PluginContext
from plugins._plugin import PluginBase
from plugins._source import source_plugin
from plugins.builtin._common import (
    check_header,
    check_records,
    data_error,
    file_format,
    json_type,
    loads_strict,
    read_csv_rows,
)
from plugins.builtin._files import checked_path, open_regular
from plugins.builtin._models import (
    DELIMITER_DESCRIPTION,
    Delimiter,
    NonEmptyStr,
    NonNegativeInt,
    PluginConfig,
    RecordFormat,
)


class DataSourceConfig(PluginConfig):
    """Configuration of ``data_source`` (the function and the source)."""

    path: NonEmptyStr | None = Field(
        None,
        description="A .json, .jsonl/.ndjson or .csv file to read records from; wins over "
        "'records'.",
    )
    format: RecordFormat | None = Field(
        None, description="The file's format; overrides the extension."
    )
    delimiter: Delimiter = Field(",", description=DELIMITER_DESCRIPTION)
    records: list[dict[str, Any]] | None = Field(
        None, description="Inline records (objects), used when 'path' is not set."
    )
    limit: NonNegativeInt | None = Field(None, description="Keep at most this many records.")


class DataSource(PluginBase):
    """Produce records from a JSON, JSON Lines or CSV file, inline config, or the inputs."""

    plugin_id = "data_source"
    Config = DataSourceConfig

    def run(
        self, inputs: dict[str, Any], config: DataSourceConfig, ctx: PluginContext
    ) -> dict[str, Any]:
        """Produce the records.

        Args:
            inputs: The node's inputs; used only when no ``path`` or ``records`` is
                configured.
            config: See the module documentation.
            ctx: The call's context.

        Returns:
            ``{"records": [...], "count": n, "source": path | "inline" | "input"}``.

        Raises:
            PluginError: ``InvalidConfiguration`` naming the bad key, or
                ``PluginExecutionFailed`` for a malformed file.
            OSError: The file cannot be read (``FileNotFoundError`` included).
        """
        path = config.path
        records_format = file_format(config.format, path)

        records: list[dict[str, Any]]
        if path is not None:
            assert records_format is not None
            file = checked_path(path, key="config 'path'")
            records = _read_file(file, records_format, config.delimiter)
            source = path
        elif config.records is not None:
            records = [dict(record) for record in config.records]
            source = "inline"
        else:
            source = "input"
            if "records" in inputs:
                given = inputs["records"]
                if not isinstance(given, list):
                    raise data_error(f"input 'records' must be a list, got {json_type(given)}")
                records = [dict(record) for record in check_records(given, "input 'records'")]
            else:
                records = [dict(inputs)]  # {} without inputs: one empty record (module docs)

        if config.limit is not None:
            records = records[: config.limit]
        ctx.logger.info("data_source.read", source=source, count=len(records))
        return {"records": records, "count": len(records), "source": source}


data_source_plugin = DataSource().as_plugin()


def _read_file(path: Path, file_format: str, delimiter: str) -> list[dict[str, Any]]:
    if file_format == "csv":
        return _read_csv(path, delimiter)
    text = _read_text(path)
    if file_format == "jsonl":
        records: list[dict[str, Any]] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            item = _parse_json(line, f"{path} line {number}")
            if not isinstance(item, dict):
                raise data_error(f"{path} line {number} is {json_type(item)}, not an object")
            records.append(item)
        return records
    document = _parse_json(text, str(path))
    if isinstance(document, dict) and isinstance(document.get("records"), list):
        document = document["records"]
    if not isinstance(document, list):
        raise data_error(
            f"{path} holds {json_type(document)}; expected a list of objects or "
            "{'records': [...]}"
        )
    return check_records(document, str(path))


def _read_text(path: Path) -> str:
    with open_regular(path, key="config 'path'") as handle:
        data = handle.read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise data_error(f"{path}: not valid UTF-8", path=str(path)) from None


def _parse_json(text: str, where: str) -> Any:
    try:
        return loads_strict(text)
    except json.JSONDecodeError as exc:
        raise data_error(f"{where}: not valid JSON: {exc}") from None
    except ValueError as exc:
        raise data_error(f"{where}: {exc}") from None


def _read_csv(path: Path, delimiter: str) -> list[dict[str, Any]]:
    rows = read_csv_rows(path, delimiter, "config 'path'")
    first = next(rows, None)
    if first is None:
        return []
    header = first[1]
    problem = check_header(header)
    if problem is not None:
        raise data_error(f"{path}: {problem}", path=str(path))
    records: list[dict[str, Any]] = []
    for line, fields in rows:
        if len(fields) > len(header):
            raise data_error(
                f"{path} line {line} has {len(fields)} fields; the header has {len(header)}",
                path=str(path),
                line=line,
            )
        record: dict[str, Any] = dict.fromkeys(header)
        record.update(zip(header, fields, strict=False))
        records.append(record)
    return records


@source_plugin("data_source", config=DataSourceConfig, passes_model=True)
async def data_source_stream(
    config: DataSourceConfig, checkpoint: Any, ctx: PluginContext
) -> AsyncIterator[dict[str, Any]]:
    """The same records as a finite source for the long-running modes: each record is one
    stream item (Streaming) or one event (EventDriven), then the source is exhausted. The
    checkpoint counts the records already taken, so a restart does not repeat them."""
    result = await asyncio.to_thread(DataSource().run, {}, config, ctx)
    for record in result["records"][int(checkpoint or 0) :]:
        yield record
