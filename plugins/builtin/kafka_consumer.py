"""``kafka_consumer``: a source reading Kafka topics through a consumer group (aiokafka).

Works for EventDriven (each record is an event) and Streaming (records are stream items).

**Not tested against a Kafka broker here.** No broker can run on the machines this project
is developed and tested on, so what is tested is everything short of a broker: the
configuration, the decoding of records into items, the offsets ``commit`` hands to the
consumer (with a stand-in consumer), and that opening against an unreachable broker fails
promptly with ``ConnectionError``. The broker-tested sources with the same delivery model
(a server-side group or durable consumer, acknowledged on commit) are
:mod:`plugins.builtin.redis_stream_source` and :mod:`plugins.builtin.nats_jetstream_source`;
prefer them where you can, and try this one against your broker before relying on it.

Config:
    bootstrap_servers (str or list of str): ``host:port`` of one or more brokers (default
        ``"127.0.0.1:9092"``; a string may list several, comma-separated).
    topics (list of str, required): The topics to consume (names of letters, digits, ``.``,
        ``_`` and ``-``, at most 249 characters).
    group_id (str): The consumer group (default derived from the workflow and node ids).
        The group holds the committed offsets; consumers sharing it share the partitions.
    auto_offset_reset (str): Where a group without committed offsets starts:
        ``"earliest"`` (the default: every record still in the topic) or ``"latest"``
        (only records produced later).
    connect_timeout (number > 0): Seconds opening may take: reaching a broker and fetching
        the cluster's metadata (default 10). Past it, or when no broker answers,
        opening fails with ``ConnectionError`` and the engine reopens the source under its
        retry policy.

Items (one per record):
    ``value`` is the record's value when it is a JSON object, else ``{"text": ...}`` for
    UTF-8 text, else ``{"base64": ...}``; a record without a value (a tombstone) is ``{}``.
    ``item_id`` is ``"{topic}:{partition}:{offset}"``, the same for every delivery of one
    record; ``event_type`` is the topic.

Delivery: at least once. The consumer runs with ``enable_auto_commit=False``: ``read`` is
``getmany(timeout_ms=max_wait, max_records=max_items)`` and nothing is committed until
``commit``, which commits, per partition, the offset after the highest offset among the
given items (Kafka commits positions, so that covers every earlier record of the partition
too; an offset is never moved back). Records read but not committed when the source closes
or the worker crashes are delivered again to the group: after the reopen, or to whichever
consumer of the group the partition is assigned to then. A commit for a partition taken
away by a rebalance fails (aiokafka's ``CommitFailedError`` or ``IllegalStateError``); the
engine then reopens the source, and the records are delivered again.

Checkpoint: ``None``; the consumer group holds the committed offsets on the brokers.

Errors:
    Bad configuration is ``InvalidConfiguration`` naming the key. A broker that cannot be
    reached at open, or a lost connection while reading or committing, is
    ``ConnectionError`` (retryable) naming the bootstrap servers. Other Kafka errors
    propagate as aiokafka raises them (retryable too).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Iterable
from typing import Annotated, Any, Literal, Protocol

from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped]
from aiokafka.errors import KafkaConnectionError  # type: ignore[import-untyped]
from aiokafka.structs import TopicPartition  # type: ignore[import-untyped]
from pydantic import Field, StringConstraints, model_validator

from plugins._context import PluginContext
from plugins._source import Source, SourceBase, SourceItem, source_plugin
from plugins.builtin._common import config_error, json_type
from plugins.builtin._models import NonEmptyStr, PluginConfig, PositiveSeconds
from plugins.builtin._streams import decode_payload, derived_name

DEFAULT_BOOTSTRAP_SERVERS = "127.0.0.1:9092"

#: A Kafka topic name: letters, digits, ``.``, ``_`` and ``-``, at most 249 characters.
TopicName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,249}$")]


class KafkaConsumerConfig(PluginConfig):
    """Configuration of the ``kafka_consumer`` source."""

    bootstrap_servers: NonEmptyStr | Annotated[list[NonEmptyStr], Field(min_length=1)] = Field(
        DEFAULT_BOOTSTRAP_SERVERS, description="host:port of one or more brokers."
    )
    topics: list[TopicName] = Field(min_length=1, description="The topics to consume.")
    group_id: NonEmptyStr | None = Field(
        None, description="The consumer group (default derived from the workflow and node ids)."
    )
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        "earliest", description="Where a group without committed offsets starts."
    )
    connect_timeout: PositiveSeconds = Field(
        10.0, description="Seconds opening may take (reaching a broker, fetching metadata)."
    )

    @model_validator(mode="after")
    def _checks(self) -> KafkaConsumerConfig:
        # What the JSON Schema cannot say: config_error passes through pydantic.
        if not all(self.servers()):
            value = self.bootstrap_servers
            raise config_error(
                "bootstrap_servers",
                f"must be 'host:port' or a non-empty list of them, got {json_type(value)} "
                f"{value!r}",
            )
        return self

    def servers(self) -> list[str]:
        """The brokers: the list, or the string split at commas."""
        value = self.bootstrap_servers
        if isinstance(value, str):
            return [part.strip() for part in value.split(",")]
        return list(value)


class KafkaConsumerLike(Protocol):
    """What :class:`KafkaConsumerSource` needs of ``AIOKafkaConsumer``."""

    def getmany(
        self, *partitions: Any, timeout_ms: int = 0, max_records: int | None = None
    ) -> Awaitable[dict[Any, list[Any]]]:
        """Records by partition."""
        ...

    def commit(self, offsets: dict[Any, int] | None = None) -> Awaitable[None]:
        """Commit offsets (the position of the next record to read) per partition."""
        ...

    def stop(self) -> Awaitable[None]:
        """Leave the group and close the connections."""
        ...


@source_plugin("kafka_consumer", config=KafkaConsumerConfig, passes_model=True)
async def open_kafka_consumer(
    config: KafkaConsumerConfig, checkpoint: Any, ctx: PluginContext
) -> Source:
    """Kafka records read through a consumer group, committed on commit (not broker-tested)."""
    servers, topics = config.servers(), list(config.topics)
    group_id = config.group_id or derived_name("po", ctx.workflow_id, ctx.node_id, max_length=200)
    connect_timeout = config.connect_timeout

    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=servers,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset=config.auto_offset_reset,
    )
    where = ", ".join(servers)
    try:
        await asyncio.wait_for(consumer.start(), timeout=connect_timeout)
    except TimeoutError:
        await _stop(consumer)
        raise ConnectionError(
            f"cannot connect to Kafka at {where}: no answer within {connect_timeout:g} s"
        ) from None
    except (KafkaConnectionError, OSError) as exc:
        await _stop(consumer)
        raise ConnectionError(f"cannot connect to Kafka at {where}: {exc}") from exc
    except BaseException:
        await _stop(consumer)
        raise
    ctx.logger.info("kafka_consumer.opened", servers=servers, topics=topics, group_id=group_id)
    return KafkaConsumerSource(consumer, servers)


class KafkaConsumerSource(SourceBase):
    """The open source; see the module documentation (never exhausted). ``consumer`` is an
    ``AIOKafkaConsumer`` that was started (or anything with its ``getmany``, ``commit``
    and ``stop``)."""

    def __init__(self, consumer: KafkaConsumerLike, servers: list[str]) -> None:
        self._consumer = consumer
        self._where = ", ".join(servers)
        self._committed: dict[tuple[str, int], int] = {}  # (topic, partition) -> offset

    async def read(self, max_items: int, max_wait: float) -> list[SourceItem]:
        try:
            batches = await self._consumer.getmany(
                timeout_ms=max(int(max_wait * 1000), 0), max_records=max(max_items, 1)
            )
        except KafkaConnectionError as exc:
            raise ConnectionError(f"lost the connection to Kafka at {self._where}: {exc}") from exc
        return [record_item(record) for records in batches.values() for record in records]

    async def commit(self, items: list[SourceItem]) -> None:
        offsets = commit_offsets(items, self._committed)
        if not offsets:
            return
        try:
            await self._consumer.commit(
                {
                    TopicPartition(topic, partition): offset
                    for (topic, partition), offset in offsets.items()
                }
            )
        except KafkaConnectionError as exc:
            raise ConnectionError(
                f"could not commit offsets to Kafka at {self._where}: {exc}"
            ) from exc
        self._committed.update(offsets)

    async def close(self) -> None:
        await _stop(self._consumer)


def record_item(record: Any) -> SourceItem:
    """A consumer record (``topic``, ``partition``, ``offset``, ``value``) as an item."""
    return SourceItem(
        value=decode_value(record.value),
        item_id=f"{record.topic}:{record.partition}:{record.offset}",
        event_type=record.topic,
    )


def decode_value(value: bytes | None) -> dict[str, Any]:
    """A record's value as a JSON object: the value itself when it is a JSON object, else
    ``{"text": ...}`` for UTF-8 text, else ``{"base64": ...}``; ``{}`` for no value."""
    if value is None:
        return {}
    return decode_payload(bytes(value))


def parse_item_id(item_id: str) -> tuple[str, int, int]:
    """``(topic, partition, offset)`` from an item id (topic names hold no ``:``)."""
    topic, partition, offset = item_id.rsplit(":", 2)
    return topic, int(partition), int(offset)


def commit_offsets(
    items: Iterable[SourceItem], committed: dict[tuple[str, int], int]
) -> dict[tuple[str, int], int]:
    """The offsets to commit for ``items``: per ``(topic, partition)``, one past the highest
    offset among them; partitions already committed at or beyond that are left out."""
    wanted: dict[tuple[str, int], int] = {}
    for item in items:
        topic, partition, offset = parse_item_id(item.item_id)
        key = (topic, partition)
        wanted[key] = max(wanted.get(key, 0), offset + 1)
    return {key: offset for key, offset in wanted.items() if offset > committed.get(key, -1)}


async def _stop(consumer: KafkaConsumerLike) -> None:
    with contextlib.suppress(Exception):
        await consumer.stop()
