"""``data_processor``: filter, reshape, sort and truncate records.

Config (all optional; applied in this order; with none the records pass through unchanged):
    filter (str): A CEL condition evaluated per record with the record's keys as variables,
        e.g. ``"int(age) >= 30 && country == 'NL'"`` (CSV values are strings, hence ``int``).
        Records for which it is true are kept. A record it cannot be evaluated on (unknown
        variable, type mismatch) is an error naming the record's index.
    select (list of str): Keep only these fields, in this order; fields a record lacks are
        left out.
    rename (object): Map of old field name to new; field order is kept.
    uppercase (list of str): Upper-case these fields where their value is a string (names
        after ``rename``).
    sort_by (str): Sort by this field (stable). Records lacking it (or holding null) go last.
        Values of mixed types are ordered booleans, numbers, strings, then anything else.
    descending (bool): Sort descending (default false); only with ``sort_by``.
    limit (int >= 0): Keep at most this many records.

Inputs:
    ``inputs["records"]`` if it is a list; else the first input value that is an object with a
    ``"records"`` list (an upstream node's output) or a list itself.

Output:
    ``records`` (list of objects), ``count`` (int).

Errors:
    Bad configuration (including a ``filter`` that is not valid CEL) is
    ``InvalidConfiguration`` naming the key; no records in the inputs, or a record the filter
    cannot be evaluated on, is ``PluginExecutionFailed``.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from engine.language.conditions import Condition, ConditionError, compile_condition
from plugins._context import PluginContext
from plugins._plugin import PluginBase
from plugins.builtin._common import config_error, data_error, find_records
from plugins.builtin._models import CelCondition, NonEmptyStr, NonNegativeInt, PluginConfig


class DataProcessorConfig(PluginConfig):
    """Configuration of ``data_processor`` (steps applied in the order of the fields)."""

    filter: CelCondition | None = Field(
        None,
        description="CEL condition per record (its keys are the variables); records it is "
        'true for are kept, e.g. "int(age) >= 30".',
    )
    select: list[NonEmptyStr] | None = Field(
        None, description="Keep only these fields, in this order."
    )
    rename: dict[str, NonEmptyStr] | None = Field(None, description="Map of old field name to new.")
    uppercase: list[NonEmptyStr] | None = Field(
        None, description="Upper-case these string fields (names after 'rename')."
    )
    sort_by: NonEmptyStr | None = Field(
        None, description="Sort by this field (stable; records lacking it go last)."
    )
    descending: bool = Field(False, description="Sort descending (only with 'sort_by').")
    limit: NonNegativeInt | None = Field(None, description="Keep at most this many records.")


class DataProcessor(PluginBase):
    """Filter (CEL), select, rename, upper-case, sort and limit the records in the inputs."""

    plugin_id = "data_processor"
    light = True  # a pure transform of its inputs: short, idempotent, no heartbeats
    Config = DataProcessorConfig

    def run(
        self, inputs: dict[str, Any], config: DataProcessorConfig, ctx: PluginContext
    ) -> dict[str, Any]:
        """Process the records.

        Args:
            inputs: The node's inputs; records are found as the module documentation says.
            config: See the module documentation.
            ctx: The call's context.

        Returns:
            ``{"records": [...], "count": n}``.

        Raises:
            PluginError: ``InvalidConfiguration`` naming the bad key, or
                ``PluginExecutionFailed`` when there are no records or the filter fails on
                one.
        """
        condition = _condition(config.filter)
        select, rename, uppercase = config.select, config.rename, config.uppercase

        source = find_records(inputs)
        records = [dict(record) for record in source]
        if condition is not None:
            records = _filter(records, condition)
        if select is not None:
            records = [{name: rec[name] for name in select if name in rec} for rec in records]
        if rename:
            records = [{rename.get(key, key): val for key, val in rec.items()} for rec in records]
        if uppercase:
            for record in records:
                for name in uppercase:
                    if isinstance(record.get(name), str):
                        record[name] = record[name].upper()
        if config.sort_by is not None:
            records = _sort(records, config.sort_by, config.descending)
        if config.limit is not None:
            records = records[: config.limit]

        ctx.logger.info("data_processor.done", received=len(source), count=len(records))
        return {"records": records, "count": len(records)}


data_processor_plugin = DataProcessor().as_plugin()


def _condition(text: str | None) -> Condition | None:
    if text is None:
        return None
    try:
        return compile_condition(text)
    except ConditionError as exc:
        raise config_error("filter", f"is not a valid condition: {exc}") from None


def _filter(records: list[dict[str, Any]], condition: Condition) -> list[dict[str, Any]]:
    kept: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        try:
            keep = condition.evaluate(record)
        except ConditionError as exc:
            raise data_error(
                f"filter {condition.text!r} failed on record {index}: {exc}", index=index
            ) from None
        if keep:
            kept.append(record)
    return kept


def _sort(records: list[dict[str, Any]], field: str, descending: bool) -> list[dict[str, Any]]:
    present = [record for record in records if record.get(field) is not None]
    missing = [record for record in records if record.get(field) is None]
    present.sort(key=lambda record: _sort_key(record[field]), reverse=descending)
    return present + missing


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool):
        return (0, value)
    if isinstance(value, int | float):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (3, json.dumps(value, sort_keys=True))
