"""``kafka_consumer`` without a broker: what can honestly be tested here.

No Kafka broker can run on the machines this project is tested on, so these tests cover
everything short of one, and none of them claims more:

* configuration checks (the model's refusals are in ``test_config_models.py``);
* decoding record values into items, and item ids;
* the offsets ``commit`` hands to the consumer: a unit test of *our* offset bookkeeping with
  a small stand-in consumer object injected into :class:`KafkaConsumerSource`. It says
  nothing about how a broker treats those commits;
* opening against a broker that is not there, or does not answer, with the real aiokafka
  client: it must fail promptly with a retryable ``ConnectionError`` and leak nothing.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError  # type: ignore[import-untyped]
from aiokafka.structs import ConsumerRecord, TopicPartition  # type: ignore[import-untyped]

from engine.base.errors import PluginError, PluginErrorCode
from plugins import PluginContext, Source, SourceItem
from plugins.builtin.kafka_consumer import (
    KafkaConsumerSource,
    commit_offsets,
    decode_value,
    open_kafka_consumer,
    parse_item_id,
    record_item,
)
from tests.helpers.plugin_config import names_key


def make_ctx() -> PluginContext:
    return PluginContext(
        execution_id="e",
        workflow_id="orders-wf",
        node_id="kafka",
        plugin_id="kafka_consumer",
        attempt=1,
        idempotency_key="k",
    )


def record(topic: str, partition: int, offset: int, value: bytes | None) -> ConsumerRecord:
    return ConsumerRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=1_700_000_000_000,
        timestamp_type=0,
        key=None,
        value=value,
        checksum=None,
        serialized_key_size=-1,
        serialized_value_size=len(value) if value is not None else -1,
        headers=[],
    )


class FakeConsumer:
    """Stands in for a started ``AIOKafkaConsumer``: hands out prepared ``getmany`` results
    and records the offsets it is asked to commit. Not Kafka: no broker semantics at all."""

    def __init__(self, batches: list[dict[TopicPartition, list[ConsumerRecord]]]) -> None:
        self.batches = list(batches)
        self.getmany_calls: list[tuple[int, int | None]] = []
        self.commits: list[dict[TopicPartition, int]] = []
        self.stopped = False
        self.fail_next: Exception | None = None

    async def getmany(
        self, *partitions: Any, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        self.getmany_calls.append((timeout_ms, max_records))
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        return self.batches.pop(0) if self.batches else {}

    async def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        assert offsets is not None  # the source always names its offsets
        self.commits.append(dict(offsets))

    async def stop(self) -> None:
        self.stopped = True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- decoding -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b'{"id": 7, "amount": 12.5}', {"id": 7, "amount": 12.5}),
        (b'  {"nested": {"a": [1, 2]}}', {"nested": {"a": [1, 2]}}),
        (b"[1, 2]", {"text": "[1, 2]"}),
        (b"42", {"text": "42"}),
        (b'{"broken": ', {"text": '{"broken": '}),
        (b'{"x": NaN}', {"text": '{"x": NaN}'}),
        ("grüße".encode(), {"text": "grüße"}),
        (b"\xff\x00\xfe", {"base64": "/wD+"}),
        (b"", {"text": ""}),
        (None, {}),
    ],
)
def test_decode_value(value: bytes | None, expected: dict[str, Any]) -> None:
    assert decode_value(value) == expected


def test_record_item_and_its_id() -> None:
    item = record_item(record("orders.v1-eu_west", 3, 1234, b'{"id": 1}'))
    assert item == SourceItem(
        value={"id": 1}, item_id="orders.v1-eu_west:3:1234", event_type="orders.v1-eu_west"
    )
    assert parse_item_id(item.item_id) == ("orders.v1-eu_west", 3, 1234)
    assert record_item(record("t", 0, 0, None)).value == {}


def test_commit_offsets_per_partition() -> None:
    items = [
        SourceItem(value={}, item_id=item_id)
        for item_id in ("a:0:5", "a:0:7", "a:1:2", "b:0:0", "a:0:6")
    ]
    assert commit_offsets(items, {}) == {("a", 0): 8, ("a", 1): 3, ("b", 0): 1}
    # Never moved back, never repeated.
    assert commit_offsets(items, {("a", 0): 8, ("a", 1): 10}) == {("b", 0): 1}
    assert commit_offsets([], {}) == {}


# --- the source with a stand-in consumer ------------------------------------------------------


async def test_read_then_commit_exactly_the_given_items() -> None:
    """Offset bookkeeping: ``commit`` commits, per partition, one past the highest offset of
    the items it is given, and nothing for items it is not given."""
    p0, p1 = TopicPartition("orders", 0), TopicPartition("orders", 1)
    fake = FakeConsumer(
        [
            {
                p0: [record("orders", 0, 10, b'{"n": 1}'), record("orders", 0, 11, b'{"n": 2}')],
                p1: [record("orders", 1, 4, b"plain text")],
            },
            {p0: [record("orders", 0, 12, b'{"n": 3}')]},
        ]
    )
    source = KafkaConsumerSource(fake, ["127.0.0.1:9092"])
    assert isinstance(source, Source)

    first = await source.read(100, 0.25)
    assert fake.getmany_calls == [(250, 100)]
    assert [item.item_id for item in first] == ["orders:0:10", "orders:0:11", "orders:1:4"]
    assert [item.value for item in first] == [{"n": 1}, {"n": 2}, {"text": "plain text"}]
    assert {item.event_type for item in first} == {"orders"}

    await source.commit(first[:1])  # only offset 10 of partition 0
    assert fake.commits == [{p0: 11}]
    await source.commit(first[1:])
    assert fake.commits[-1] == {p0: 12, p1: 5}

    second = await source.read(10, 0.0)
    assert [item.item_id for item in second] == ["orders:0:12"]
    assert fake.getmany_calls[-1] == (0, 10)
    await source.commit(first)  # already committed: nothing to send
    assert len(fake.commits) == 2
    await source.commit([])
    assert len(fake.commits) == 2
    await source.commit(second)
    assert fake.commits[-1] == {p0: 13}

    assert await source.read(10, 0.01) == []  # nothing more
    assert source.checkpoint() is None
    assert not source.exhausted
    await source.close()
    assert fake.stopped


async def test_lost_connection_is_a_connection_error() -> None:
    fake = FakeConsumer([])
    source = KafkaConsumerSource(fake, ["k1:9092", "k2:9092"])
    fake.fail_next = KafkaConnectionError("gone")
    with pytest.raises(ConnectionError, match="k1:9092, k2:9092"):
        await source.read(10, 0.01)
    fake.fail_next = KafkaConnectionError("gone")
    with pytest.raises(ConnectionError, match="could not commit"):
        await source.commit([SourceItem(value={}, item_id="t:0:1")])
    # The failed commit is not remembered as done.
    await source.commit([SourceItem(value={}, item_id="t:0:1")])
    assert fake.commits == [{TopicPartition("t", 0): 2}]


# --- opening with the real client, no broker ------------------------------------------------


async def test_open_against_no_broker_fails_fast_and_retryably() -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    with pytest.raises(ConnectionError) as info:
        await open_kafka_consumer.open(
            {"bootstrap_servers": address, "topics": ["orders"]}, None, make_ctx()
        )
    assert time.monotonic() - started < 5
    assert address in str(info.value)
    assert not isinstance(info.value, PluginError)  # retryable: the engine reopens the source


async def test_open_against_a_silent_server_is_bounded_by_connect_timeout() -> None:
    """A listener that accepts connections and never answers: the open gives up after
    ``connect_timeout`` instead of aiokafka's much longer request timeout."""
    writers: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        started = time.monotonic()
        with pytest.raises(ConnectionError, match=r"no answer within 0\.5 s"):
            await open_kafka_consumer.open(
                {
                    "bootstrap_servers": [f"127.0.0.1:{port}"],
                    "topics": ["orders"],
                    "connect_timeout": 0.5,
                },
                None,
                make_ctx(),
            )
        assert time.monotonic() - started < 4
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({}, "topics"),
        ({"topics": []}, "topics"),
        ({"topics": ["bad topic"]}, "topics"),
        ({"topics": ["ok", "a:b"]}, "topics"),
        ({"topics": ["t"], "bootstrap_servers": []}, "bootstrap_servers"),
        ({"topics": ["t"], "bootstrap_servers": 9092}, "bootstrap_servers"),
        ({"topics": ["t"], "auto_offset_reset": "smallest"}, "auto_offset_reset"),
        ({"topics": ["t"], "group_id": ""}, "group_id"),
        ({"topics": ["t"], "connect_timeout": 0}, "connect_timeout"),
    ],
)
async def test_bad_configuration_names_the_key(config: dict[str, Any], key: str) -> None:
    """The source's model refuses it as the source opens, before any connection is tried."""
    with pytest.raises(PluginError) as info:
        await open_kafka_consumer.open(config, None, make_ctx())
    assert info.value.code is PluginErrorCode.InvalidConfiguration
    assert names_key(info.value.message, key), info.value.message
