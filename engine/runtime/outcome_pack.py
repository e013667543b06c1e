"""The compact wire form (format 2) of an ended run's :class:`ExecutionOutcome`.

An ended run stores its outcome as its Temporal result (or in its failure's details, or in
its memo when cancelled). In the plain form (format 1) a 100-node chain's outcome was about
80 KB, as much as the rest of its history: every event repeated the execution and definition
ids and a full timestamp, every node state its id and the values all nodes share. Format 2
keeps the same information, losslessly, as plain JSON still readable in Temporal UI:

* ``events``: ``{"first": <first sequence>, "at": <first timestamp>, "types": [<event types,
  in order of first use>], "rows": [[<type index>, <microseconds since the previous event>,
  <node id>, {<other fields>}], ...]}``: sequences are consecutive from ``first``; the node id
  and the other fields are left out when absent, and a progress event has its figure in the
  node id's place; ``execution_id`` and ``workflow_id`` are
  given only where they differ from the context's. Events whose sequences are not consecutive
  stay a plain list;
* ``nodes`` (out of the context): ``{"common": {<key: value every node state shares>},
  "states": {<node key>: {<the state's other keys>}}}``; ``node_id`` is left out where it is
  the key, and ``started_at`` / ``completed_at`` become ``"@t": [<microseconds after the
  run's start_time>, <microseconds the node took>]`` wherever that gives back the same
  strings.

:func:`pack` makes it from the plain JSON form and :func:`unpack` gives the plain form back
(:class:`~engine.runtime.contracts.ExecutionOutcome` does both as it is written and read, so
readers see one model whatever form a run stored).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from math import isfinite
from typing import Any

FORMAT = 2
_MICROSECOND = timedelta(microseconds=1)
# NodeState.as_dict's key order, given back on unpacking.
_NODE_KEYS = (
    "node_id",
    "plugin_id",
    "status",
    "attempts",
    "started_at",
    "completed_at",
    "counters",
    "result",
    "error",
    "skipped_by_operator",
    "child_execution_id",
    "compensation",
)
_NODE_TIMES = ("started_at", "completed_at")
_TIMES = "@t"  # a node's start and duration, in microseconds (no node state has "@" keys)
_EVENT_OWN = ("type", "sequence", "timestamp", "node_id")
_IDS = ("execution_id", "workflow_id")


def pack(
    context: dict[str, Any],
    events: list[dict[str, Any]],
    truncated: bool,
    *,
    packed_events: list[dict[str, Any]] | dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The format-2 form of an outcome given in its plain JSON form (``context`` as
    ``model_dump(mode="json")``, ``events`` as their compact dicts; or ``packed_events``,
    the events already packed by :func:`pack_event_models`)."""
    context = dict(context)
    packed: dict[str, Any] = {"format": FORMAT}
    states = context.get("node_states") or {}
    start = _time(context.get("start_time"))
    if states and all(
        isinstance(state, dict) and "node_id" in state and _TIMES not in state
        for state in states.values()
    ):
        packed["nodes"] = _pack_nodes(states, start)
        del context["node_states"]
    packed["context"] = context
    packed["events"] = packed_events if packed_events is not None else _pack_events(events, context)
    if truncated:
        packed["truncated"] = True
    return packed


def unpack(data: dict[str, Any]) -> dict[str, Any]:
    """The plain form of a format-2 outcome (raises ValueError if it is not one)."""
    try:
        context = dict(data["context"])
        if "nodes" in data:
            context["node_states"] = _unpack_nodes(data["nodes"], _time(context.get("start_time")))
        events = data.get("events") or []
        if isinstance(events, dict):
            events = _unpack_events(events, context)
        return {
            "context": context,
            "events": events,
            "truncated": bool(data.get("truncated", False)),
            "format": FORMAT,
        }
    except (KeyError, IndexError, TypeError, AttributeError, ValueError, OverflowError) as exc:
        raise ValueError(f"not a format-{FORMAT} execution outcome: {exc!r}") from None


# -- events -----------------------------------------------------------------------------------


def _pack_events(
    events: list[dict[str, Any]], context: dict[str, Any]
) -> list[dict[str, Any]] | dict[str, Any]:
    if not events:
        return []
    first = events[0]["sequence"]
    times = [_time(event["timestamp"]) for event in events]
    if any(event["sequence"] != first + i for i, event in enumerate(events)) or None in times:
        return events  # not consecutive, or a time without its zone: kept as they are
    types: dict[str, int] = {}
    rows: list[list[Any]] = []
    previous = times[0]
    for event, at in zip(events, times, strict=True):
        assert previous is not None
        assert at is not None
        rows.append(_event_row(event, (at - previous) // _MICROSECOND, types, context))
        previous = at
    return {"first": first, "at": events[0]["timestamp"], "types": list(types), "rows": rows}


def _event_row(
    event: dict[str, Any], delta: int, types: dict[str, int], context: dict[str, Any]
) -> list[Any]:
    row: list[Any] = [types.setdefault(event["type"], len(types)), delta]
    others = {key: value for key, value in event.items() if key not in _EVENT_OWN}
    for key in _IDS:
        if others.get(key, "") == context.get(key, ""):
            others.pop(key, None)
        else:
            others[key] = event.get(key, "")
    node_id = event.get("node_id")
    if node_id is None and list(others) == ["progress"] and _number(others["progress"]):
        row.append(others["progress"])  # a progress event: its figure in the node's place
    else:
        if node_id is not None or others:
            row.append(node_id)
        if others:
            row.append(others)
    return row


def pack_event_models(
    events: Sequence[Any], context: dict[str, Any], dump: Callable[[Any], dict[str, Any]]
) -> list[dict[str, Any]] | dict[str, Any]:
    """What :func:`pack` writes for ``events`` given as models (``WorkflowEvent``; ``dump``
    gives an event's compact dict), the same JSON: the events most runs have (a type, a
    node or a finite progress, the context's ids) are read off the model, without dumping
    them and parsing their times back; any other event goes through its dict."""
    if not events:
        return []
    first = events[0].sequence
    ids = (context.get("execution_id", ""), context.get("workflow_id", ""))
    types: dict[str, int] = {}
    rows: list[list[Any]] = []
    previous = events[0].timestamp
    for i, event in enumerate(events):
        at = event.timestamp
        if event.sequence != first + i or type(at) is not datetime or at.tzinfo is None:
            return _pack_events([dump(event) for event in events], context)  # it decides
        delta = (at - previous) // _MICROSECOND
        previous = at
        progress = event.progress
        if (
            event.result is not None
            or event.error is not None
            or event.details is not None
            or event.execution_id != ids[0]
            or event.workflow_id != ids[1]
            or (progress is not None and (type(progress) is not float or not isfinite(progress)))
        ):
            rows.append(_event_row(dump(event), delta, types, context))
            continue
        row: list[Any] = [types.setdefault(event.type.value, len(types)), delta]
        node_id = event.node_id
        if node_id is None:
            if progress is not None:
                row.append(progress)  # a progress event: its figure in the node's place
        else:
            row.append(node_id)
            if progress is not None:
                row.append({"progress": progress})
        rows.append(row)
    return {"first": first, "at": dump(events[0])["timestamp"], "types": list(types), "rows": rows}


def _unpack_events(packed: dict[str, Any], context: dict[str, Any]) -> list[dict[str, Any]]:
    types = packed["types"]
    at = _time(packed["at"])
    if at is None:
        raise TypeError("events without a first timestamp")
    first = int(packed["first"])
    events = []
    for i, row in enumerate(packed["rows"]):
        at += int(row[1]) * _MICROSECOND
        event: dict[str, Any] = {
            "type": types[row[0]],
            "execution_id": context.get("execution_id", ""),
            "workflow_id": context.get("workflow_id", ""),
            "sequence": first + i,
            "timestamp": at,
        }
        if len(row) > 2 and _number(row[2]):
            event["progress"] = row[2]
        elif len(row) > 2 and row[2] is not None:
            event["node_id"] = row[2]
        if len(row) > 3:
            event.update(row[3])
        events.append(event)
    return events


# -- node states ------------------------------------------------------------------------------


def _pack_nodes(states: dict[str, dict[str, Any]], start: datetime | None) -> dict[str, Any]:
    own: dict[str, dict[str, Any]] = {}
    for key, state in states.items():
        kept = dict(state)
        if kept["node_id"] == key:
            del kept["node_id"]
        began, ended = (_offset(kept.get(name), start) for name in _NODE_TIMES)
        if _integer(began) and _integer(ended):
            del kept["started_at"], kept["completed_at"]
            kept[_TIMES] = [began, ended - began]
        own[key] = kept
    common: dict[str, Any] = {}
    if len(own) > 1:
        candidates = next(iter(own.values()))
        for name, value in candidates.items():
            text = None if _plain_scalar(value) else _canonical(value)
            if all(
                name in kept
                and (
                    _same_scalar(kept[name], value)
                    if text is None
                    else _canonical(kept[name]) == text
                )
                for kept in own.values()
            ):
                common[name] = value
        for kept in own.values():
            for name in common:
                del kept[name]
    return {"common": common, "states": own}


def _unpack_nodes(packed: dict[str, Any], start: datetime | None) -> dict[str, dict[str, Any]]:
    common = packed["common"]
    states: dict[str, dict[str, Any]] = {}
    for key, kept in packed["states"].items():
        merged = {"node_id": key, **common, **kept}
        times = merged.pop(_TIMES, None)
        if times is not None:
            if start is None:
                raise TypeError(f"node '{key}': times as offsets with no start time")
            began = start + int(times[0]) * _MICROSECOND
            merged["started_at"] = began.isoformat()
            merged["completed_at"] = (began + int(times[1]) * _MICROSECOND).isoformat()
        ordered = {name: merged[name] for name in _NODE_KEYS if name in merged}
        ordered.update((name, value) for name, value in merged.items() if name not in ordered)
        states[key] = ordered
    return states


# Values whose JSON text is equal exactly when they are of one type and equal: no float (-0.0
# equals 0.0, NaN not itself), no container (1 equals 1.0 and True inside them).
_PLAIN_SCALARS = (str, int, bool, type(None))


def _plain_scalar(value: Any) -> bool:
    return type(value) in _PLAIN_SCALARS


def _same_scalar(value: Any, scalar: Any) -> bool:
    """Whether ``value`` has the JSON text of ``scalar``, a plain scalar (see above)."""
    return type(value) is type(scalar) and value == scalar


# The checks below test the exact type first: inside the workflow sandbox, isinstance is a
# Python-level wrapper (for the whole process), and they run a few times per node.


def _integer(value: Any) -> bool:
    kind = type(value)
    if kind is int:
        return True
    return kind is not bool and isinstance(value, int)


def _number(value: Any) -> bool:
    kind = type(value)
    if kind is int or kind is float:
        return True
    return kind is not bool and isinstance(value, int | float)


def _offset(value: Any, start: datetime | None) -> Any:
    """A node's time as microseconds after the run's start, where that gives the same string
    back; else as it was."""
    if start is None or not (type(value) is str or isinstance(value, str)):
        return value
    at = _time(value)
    if at is None or at.tzinfo is None:
        return value
    offset = (at - start) // _MICROSECOND
    return offset if (start + offset * _MICROSECOND).isoformat() == value else value


def _time(value: Any) -> datetime | None:
    kind = type(value)
    if kind is not str:
        if kind is datetime or isinstance(value, datetime):
            return value  # type: ignore[no-any-return]
        if not isinstance(value, str):
            return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
