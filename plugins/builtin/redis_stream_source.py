"""``redis_stream_source``: a source reading a Redis Stream through a consumer group.

Works for EventDriven (each entry is an event) and Streaming (entries are stream items).

Config:
    url (str): Redis URL (default ``redis://127.0.0.1:6379/0``; ``rediss://`` for TLS,
        ``redis://:password@host:port/db`` for a password).
    stream (str, required): The stream key.
    group (str): The consumer group (default derived from the workflow id). Consumers of
        one group share the entries; give each independent reader its own group.
    consumer (str): This reader's consumer name within the group (default derived from the
        node id). Keep it stable: entries read but not acknowledged stay pending under it,
        and it is this name that reads them again after a restart.
    create_group (bool): Create the group (and the stream, ``MKSTREAM``) if it does not
        exist (default true). When false a missing group is an error on the first read.
    start_id (str): Where a newly created group starts: ``"0"`` (the default: every entry
        already in the stream) or ``"$"`` (only entries added later), or an entry id.
    stop_when_empty (bool): Mark the source exhausted once a read finds no pending and no
        new entries (default false: wait for more forever). For finite runs and benchmarks.

Items:
    ``value`` is the entry's fields: when the entry has a single field named ``json`` or
    ``data`` holding a JSON object, that object; otherwise the field map, names and values
    decoded as UTF-8 text (undecodable bytes replaced by U+FFFD). ``item_id`` is the entry id
    (``"1700000000000-0"``); ``event_type`` is the stream key; ``redelivered`` is true for
    entries read again from this consumer's pending list.

Delivery: at least once. ``read`` first goes through this consumer's pending entries
(``XREADGROUP ... 0``: entries read before a crash and never acknowledged come again), then
reads new ones (``XREADGROUP ... >``, ``BLOCK`` for ``max_wait``, ``COUNT max_items``).
``commit`` acknowledges the items with ``XACK``. Entries deleted from the stream while
pending are acknowledged and skipped.

Checkpoint: ``None``; the consumer group holds the position on the server.

Connection failures raise ``ConnectionError`` (retryable) naming the URL (without password).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import redis.asyncio as aioredis
from pydantic import Field
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from plugins._context import PluginContext
from plugins._source import Source, SourceBase, SourceItem, source_plugin
from plugins.builtin._models import NonEmptyStr, PluginConfig
from plugins.builtin._streams import derived_name, redact_url

DEFAULT_URL = "redis://127.0.0.1:6379/0"


class RedisStreamSourceConfig(PluginConfig):
    """Configuration of the ``redis_stream_source`` source."""

    url: NonEmptyStr = Field(
        DEFAULT_URL, description="Redis URL (rediss:// for TLS; redis://:password@host:port/db)."
    )
    stream: NonEmptyStr = Field(description="The stream key.")
    group: NonEmptyStr | None = Field(
        None, description="The consumer group (default derived from the workflow id)."
    )
    consumer: NonEmptyStr | None = Field(
        None, description="This reader's consumer name (default derived from the node id)."
    )
    create_group: bool = Field(
        True, description="Create the group (and the stream) if it does not exist."
    )
    start_id: NonEmptyStr = Field(
        "0",
        description="Where a new group starts: '0' (every entry), '$' (only new ones) or an "
        "entry id.",
    )
    stop_when_empty: bool = Field(
        False, description="Be exhausted once a read finds nothing (finite runs)."
    )


@source_plugin("redis_stream_source", config=RedisStreamSourceConfig, passes_model=True)
async def open_redis_stream_source(
    config: RedisStreamSourceConfig, checkpoint: Any, ctx: PluginContext
) -> Source:
    """Entries of a Redis Stream, read through a consumer group and acknowledged on commit."""
    url, stream, start_id = config.url, config.stream, config.start_id
    group = config.group or derived_name("po", ctx.workflow_id)
    consumer = config.consumer or derived_name(ctx.node_id)

    client = aioredis.from_url(url)
    try:
        await client.ping()
        if config.create_group:
            try:
                await client.xgroup_create(stream, group, id=start_id, mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        await client.aclose()
        raise ConnectionError(f"cannot connect to Redis at {redact_url(url)}: {exc}") from exc
    except BaseException:
        await client.aclose()
        raise
    ctx.logger.info("redis_stream_source.opened", stream=stream, group=group, consumer=consumer)
    return RedisStreamSource(client, url, stream, group, consumer, config.stop_when_empty)


class RedisStreamSource(SourceBase):
    """The open source; see the module documentation."""

    def __init__(
        self,
        client: aioredis.Redis,
        url: str,
        stream: str,
        group: str,
        consumer: str,
        stop_when_empty: bool,
    ) -> None:
        self._client = client
        self._url = url
        self._stream = stream
        self._group = group
        self._consumer = consumer
        self._stop_when_empty = stop_when_empty
        self._pending_cursor: str | None = "0"  # None once the pending list is read through
        self._last_returned = "0"  # the id of the last entry read returned

    async def read(self, max_items: int, max_wait: float) -> list[SourceItem]:
        count = max(max_items, 1)
        try:
            while self._pending_cursor is not None:
                entries = await self._read_group(self._pending_cursor, count, None)
                if not entries:
                    self._pending_cursor = None
                    break
                gone = [entry_id for entry_id, fields in entries if not fields]
                if gone:  # deleted from the stream while pending: nothing to deliver
                    await self._client.xack(self._stream, self._group, *gone)
                self._pending_cursor = entries[-1][0]
                items = self._items(entries, redelivered=True)
                if items:
                    return items
            block = int(max_wait * 1000)
            entries = await self._read_group(">", count, block if block > 0 else None)
        except asyncio.CancelledError:
            # The server may have handed this consumer entries the cancelled read never
            # returned: they are pending now, after the last id returned. Read them from the
            # pending list next time.
            self._pending_cursor = self._last_returned
            raise
        except (RedisConnectionError, RedisTimeoutError) as exc:
            self._pending_cursor = self._last_returned
            raise ConnectionError(
                f"lost the connection to Redis at {redact_url(self._url)}: {exc}"
            ) from exc
        items = self._items(entries, redelivered=False)
        if not items and self._stop_when_empty:
            self.mark_exhausted()
        return items

    async def commit(self, items: list[SourceItem]) -> None:
        if not items:
            return
        try:
            await self._client.xack(self._stream, self._group, *(item.item_id for item in items))
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise ConnectionError(
                f"lost the connection to Redis at {redact_url(self._url)}: {exc}"
            ) from exc

    async def close(self) -> None:
        await self._client.aclose()

    async def _read_group(self, start: str, count: int, block: int | None) -> list[tuple[str, Any]]:
        response = await self._client.xreadgroup(
            self._group, self._consumer, {self._stream: start}, count=count, block=block
        )
        return _entries(response)

    def _items(self, entries: list[tuple[str, Any]], *, redelivered: bool) -> list[SourceItem]:
        """The entries as items (entries without fields skipped); they count as returned."""
        if entries:
            self._last_returned = entries[-1][0]
        return [
            SourceItem(
                value=_value(fields),
                item_id=entry_id,
                event_type=self._stream,
                redelivered=redelivered,
            )
            for entry_id, fields in entries
            if fields
        ]


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _entries(response: Any) -> list[tuple[str, Any]]:
    """``[(entry id, fields)]`` from an XREADGROUP reply of one stream, in any of the shapes
    redis-py returns (RESP2 list of ``[stream, entries]``; RESP3 map)."""
    if not response:
        return []
    if isinstance(response, dict):
        batches: list[Any] = list(response.values())
    else:
        batches = [pair[1] for pair in response]
    entries: list[tuple[str, Any]] = []
    for batch in batches:
        # RESP3 via redis-py wraps the entry list in one more list.
        if (
            batch
            and isinstance(batch[0], list)
            and batch[0]
            and isinstance(batch[0][0], list | tuple)
        ):
            batch = batch[0]
        for entry in batch:
            entry_id, fields = entry[0], entry[1]
            entries.append((_text(entry_id), fields))
    return entries


def _value(fields: Any) -> dict[str, Any]:
    if isinstance(fields, list):  # a flat [name, value, ...] reply
        fields = dict(zip(fields[::2], fields[1::2], strict=True))
    decoded = {_text(name): _text(value) for name, value in fields.items()}
    if len(decoded) == 1:
        name, text = next(iter(decoded.items()))
        if name in ("json", "data") and text.lstrip().startswith("{"):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                return parsed
    return decoded
