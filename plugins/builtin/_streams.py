"""Helpers shared by the built-in sources and stream processors.

Names derived from workflow and node ids, message payload decoding, URLs without passwords,
and how a stream processor or sink finds its items.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from plugins.builtin._common import check_records, data_error, loads_strict

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_-]+")


def derived_name(*parts: str, max_length: int = 64) -> str:
    """A name built from ``parts`` that is safe as an MQTT client id, a Redis consumer group
    or a NATS durable name: letters, digits, ``_`` and ``-`` only, at most ``max_length``
    characters. When the readable form has to be shortened, a hash of the full text keeps
    different inputs apart."""
    full = "-".join(parts)
    readable = _UNSAFE_NAME.sub("_", full).strip("_-") or "po"
    if len(readable) <= max_length and readable == full:
        return readable
    digest = hashlib.sha256(full.encode("utf-8")).hexdigest()[:8]
    keep = max(max_length - len(digest) - 1, 1)
    return f"{readable[:keep].rstrip('_-') or 'po'}-{digest}"


def decode_payload(payload: bytes) -> dict[str, Any]:
    """A message body as a JSON object: the body itself when it is a JSON object, else
    ``{"text": ...}`` for UTF-8 text, else ``{"base64": ...}``."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(payload).decode("ascii")}
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            value = loads_strict(text)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
    return {"text": text}


def collect_items(inputs: dict[str, Any]) -> list[dict[str, Any]]:
    """The items a stream processor or sink works on.

    ``inputs["records"]`` if it is a list (batch mode's convention); otherwise every input
    value that is a list (Streaming: one list per upstream node or port), or an object holding
    an ``"items"`` or ``"records"`` list (an upstream node's output in the batch modes),
    concatenated in input order.

    Raises:
        PluginError: ``PluginExecutionFailed`` if no input holds items, or an item is not an
            object.
    """
    direct = inputs.get("records")
    if isinstance(direct, list):
        return check_records(direct, "input 'records'")
    found = False
    items: list[dict[str, Any]] = []
    for name, value in inputs.items():
        batch: Any = None
        if isinstance(value, list):
            batch = value
        elif isinstance(value, dict):
            for key in ("items", "records"):
                if isinstance(value.get(key), list):
                    batch = value[key]
                    break
        if batch is not None:
            found = True
            items.extend(check_records(batch, f"input '{name}'"))
    if not found:
        available = ", ".join(sorted(inputs)) or "none"
        raise data_error(
            "no items in the inputs: expected lists of items, an input holding "
            f"{{'items': [...]}} or {{'records': [...]}} (inputs: {available})"
        )
    return items


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
