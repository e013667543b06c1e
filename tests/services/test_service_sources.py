"""The service-backed sources and the database writer against real Redis, NATS JetStream,
Mosquitto and PostgreSQL on their standard loopback ports.

Each test uses names of its own (stream, subject, topic, client id, table) and removes what it
created. Without a service its tests are skipped, except in CI, where they fail.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import nats
import paho.mqtt.client as mqtt
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
import sqlalchemy as sa
from paho.mqtt.enums import CallbackAPIVersion

from engine.base.errors import PluginError, PluginErrorCode
from plugins import PluginContext, Source, SourceItem, SourceSpec
from plugins.builtin.database_writer import database_writer_plugin
from plugins.builtin.mqtt_subscriber import open_mqtt_subscriber
from plugins.builtin.nats_jetstream_source import open_nats_jetstream_source
from plugins.builtin.redis_stream_source import open_redis_stream_source
from tests.helpers.plugin_config import call, names_key

LOCALHOST = "127.0.0.1"
REDIS_URL = "redis://127.0.0.1:6379/0"
NATS_URL = "nats://127.0.0.1:4222"
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

Require = Callable[[str, str, int], None]
Unique = Callable[[str], str]


def make_ctx(node_id: str = "source") -> PluginContext:
    return PluginContext(
        execution_id="e",
        workflow_id="wf",
        node_id=node_id,
        plugin_id="p",
        attempt=1,
        idempotency_key="k",
    )


async def open_source(spec: SourceSpec, config: dict[str, Any]) -> Source:
    source = await spec.open(config, None, make_ctx())
    assert isinstance(source, Source)
    return source


async def read_until(source: Source, count: int, *, max_wait: float = 2.0) -> list[SourceItem]:
    """Read until ``count`` items came, or a read of ``max_wait`` seconds brings nothing."""
    items: list[SourceItem] = []
    while len(items) < count:
        batch = await source.read(count - len(items), max_wait)
        if not batch:
            break
        items.extend(batch)
    return items


# --- Redis Streams ----------------------------------------------------------------------------


def as_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@pytest_asyncio.fixture(name="redis_client", loop_scope="session")
async def fixture_redis_client(require_service: Require) -> AsyncIterator[aioredis.Redis]:
    require_service("Redis", LOCALHOST, 6379)
    client = aioredis.from_url(REDIS_URL)
    yield client
    await client.aclose()


async def test_redis_stream_redelivers_uncommitted_entries(
    redis_client: aioredis.Redis, unique_name: Unique
) -> None:
    stream = unique_name("po_test_stream")
    config: dict[str, Any] = {"url": REDIS_URL, "stream": stream, "group": unique_name("group")}
    try:
        ids = [
            await redis_client.xadd(stream, {"json": json.dumps({"n": 1, "tags": ["a"]})}),
            await redis_client.xadd(stream, {"data": "plain text"}),
            await redis_client.xadd(stream, {"kind": "order", "amount": "12"}),
        ]
        entry_ids = [as_text(entry_id) for entry_id in ids]

        source = await open_source(open_redis_stream_source, config)
        items = await read_until(source, 3)
        assert [item.item_id for item in items] == entry_ids
        assert [item.value for item in items] == [
            {"n": 1, "tags": ["a"]},
            {"data": "plain text"},
            {"kind": "order", "amount": "12"},
        ]
        assert {item.event_type for item in items} == {stream}
        assert not any(item.redelivered for item in items)
        assert source.checkpoint() is None
        await source.commit(items[:2])  # the third is read, never committed: a crash
        await source.close()

        source = await open_source(open_redis_stream_source, config)
        again = await read_until(source, 3, max_wait=0.2)
        assert [(item.item_id, item.redelivered) for item in again] == [(entry_ids[2], True)]
        await source.commit(again)
        new_id = as_text(await redis_client.xadd(stream, {"json": '{"n": 4}'}))
        [fresh] = await source.read(10, 2.0)
        assert (fresh.item_id, fresh.value, fresh.redelivered) == (new_id, {"n": 4}, False)
        await source.commit([fresh])
        await source.close()

        config["stop_when_empty"] = True
        source = await open_source(open_redis_stream_source, config)
        assert await source.read(10, 0.1) == []
        assert source.exhausted
        await source.close()
        pending = await redis_client.xpending(stream, config["group"])
        assert pending["pending"] == 0
    finally:
        await redis_client.delete(stream)


async def test_redis_stream_unreachable_is_a_connection_error(require_service: Require) -> None:
    require_service("Redis", LOCALHOST, 6379)
    with pytest.raises(ConnectionError, match="cannot connect to Redis") as info:
        await open_source(
            open_redis_stream_source, {"url": "redis://:secret@127.0.0.1:1/0", "stream": "s"}
        )
    assert "secret" not in str(info.value)
    assert "redis://:***@127.0.0.1:1/0" in str(info.value)


# --- NATS JetStream ---------------------------------------------------------------------------


@pytest_asyncio.fixture(name="jetstream", loop_scope="session")
async def fixture_jetstream(require_service: Require) -> AsyncIterator[Any]:
    require_service("NATS", LOCALHOST, 4222)
    client = await nats.connect(NATS_URL)
    yield client.jetstream()
    await client.close()


async def test_nats_jetstream_acks_on_commit_and_redelivers_the_rest(
    jetstream: Any, unique_name: Unique
) -> None:
    stream = unique_name("PO_TEST")
    subject = f"po.test.{stream}"
    config = {"stream": stream, "subject": subject, "durable": "reader", "ack_wait": 1}
    source = await open_source(open_nats_jetstream_source, config)  # creates the stream
    try:
        for body in (b'{"n": 1}', b"hello", b"\xff\x00"):
            await jetstream.publish(subject, body)
        items = await read_until(source, 3)
        assert [item.value for item in items] == [{"n": 1}, {"text": "hello"}, {"base64": "/wA="}]
        assert [item.item_id for item in items] == [f"{stream}:{seq}" for seq in (1, 2, 3)]
        assert {item.event_type for item in items} == {subject}
        assert source.checkpoint() is None
        await source.commit(items[:1])
        await source.close()  # a clean stop hands the two uncommitted ones back at once

        source = await open_source(open_nats_jetstream_source, config)
        again = await read_until(source, 2)
        assert [(item.item_id, item.redelivered) for item in again] == [
            (f"{stream}:2", True),
            (f"{stream}:3", True),
        ]
        await source.commit(again[:1])
        # A crash: the connection goes away without a clean close. The server delivers the
        # unacknowledged message again once ack_wait (1 s) runs out.
        await source._client.close()  # type: ignore[attr-defined]

        source = await open_source(open_nats_jetstream_source, {**config, "stop_when_empty": True})
        [late] = await read_until(source, 1, max_wait=2.5)
        assert (late.item_id, late.redelivered) == (f"{stream}:3", True)
        await source.commit([late])
        assert await source.read(10, 0.2) == []
        assert source.exhausted
    finally:
        await source.close()
        await jetstream.delete_stream(stream)


async def test_nats_unreachable_is_a_connection_error(require_service: Require) -> None:
    require_service("NATS", LOCALHOST, 4222)
    with pytest.raises(ConnectionError, match="cannot connect to NATS"):
        await open_source(
            open_nats_jetstream_source,
            {"servers": ["nats://127.0.0.1:1"], "stream": "S", "subject": "s"},
        )


# --- MQTT (Mosquitto) -----------------------------------------------------------------------


def publish(topic: str, payload: bytes, qos: int = 1, *, retain: bool = False) -> None:
    """Publish one message and wait until the broker has it (blocking: run in a thread)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="")
    client.connect(LOCALHOST, 1883)
    client.loop_start()
    try:
        info = client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout=5)
        assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def forget_session(client_id: str) -> None:
    """Drop a persistent session from the broker (connect with a clean session)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    client.connect(LOCALHOST, 1883)
    client.disconnect()


async def open_mqtt(config: dict[str, Any], checkpoint: Any) -> Source:
    source = await open_mqtt_subscriber.open(config, checkpoint, make_ctx())
    assert isinstance(source, Source)
    return source


async def test_mqtt_redelivers_until_committed(
    require_service: Require, unique_name: Unique
) -> None:
    require_service("Mosquitto", LOCALHOST, 1883)
    topic = f"po/test/{unique_name('topic')}"
    client_id = unique_name("po")[:23]
    config = {"topics": [f"{topic}/#"], "client_id": client_id, "qos": 1}
    await asyncio.to_thread(publish, f"{topic}/r", b'{"last": 1}', retain=True)
    source = await open_mqtt(config, None)  # makes the session and the subscription
    try:
        [retained] = await source.read(10, 2.0)
        assert retained.value == {
            "topic": f"{topic}/r",
            "payload": {"last": 1},
            "qos": 1,
            "retain": True,
        }
        await source.commit([retained])
        checkpoint = source.checkpoint()
        assert checkpoint == {"topics": [f"{topic}/#"], "qos": 1}

        await asyncio.to_thread(publish, f"{topic}/a", b'{"temp": 21.5}')
        await asyncio.to_thread(publish, f"{topic}/b", b"not json")
        first = await read_until(source, 2)
        assert [item.value for item in first] == [
            {"topic": f"{topic}/a", "payload": {"temp": 21.5}, "qos": 1, "retain": False},
            {"topic": f"{topic}/b", "payload": {"text": "not json"}, "qos": 1, "retain": False},
        ]
        assert [item.event_type for item in first] == [f"{topic}/a", f"{topic}/b"]
        assert not any(item.redelivered for item in first)
        await source.close()  # WITHOUT commit

        # Reopened with the same client id: the broker redelivers both (DUP set, same ids);
        # the retained message does not come again.
        source = await open_mqtt(config, checkpoint)
        again = await read_until(source, 3, max_wait=0.5)
        assert [item.item_id for item in again] == [item.item_id for item in first]
        assert all(item.redelivered for item in again)
        await source.commit(again)
        await source.close()  # the PUBACKs go out before the DISCONNECT

        source = await open_mqtt(config, checkpoint)
        assert await source.read(10, 0.5) == []
        await source.close()

        # Another topic list: the session's subscriptions follow it.
        changed = {**config, "topics": [f"{topic}/other"]}
        source = await open_mqtt(changed, checkpoint)
        assert source.checkpoint() == {"topics": [f"{topic}/other"], "qos": 1}
        await asyncio.to_thread(publish, f"{topic}/a", b"old filter")
        await asyncio.to_thread(publish, f"{topic}/other", b"new filter")
        [item] = await read_until(source, 2, max_wait=0.5)
        assert item.value["payload"] == {"text": "new filter"}
        await source.commit([item])
    finally:
        await source.close()
        await asyncio.to_thread(forget_session, client_id)
        await asyncio.to_thread(publish, f"{topic}/r", b"", retain=True)  # clear it


async def test_mqtt_bad_config_and_unreachable_broker(require_service: Require) -> None:
    require_service("Mosquitto", LOCALHOST, 1883)
    with pytest.raises(PluginError) as info:
        await open_source(open_mqtt_subscriber, {"topics": []})
    assert info.value.code is PluginErrorCode.InvalidConfiguration
    assert names_key(info.value.message, "topics"), info.value.message
    with pytest.raises(PluginError) as info:
        await open_source(open_mqtt_subscriber, {"topics": ["a"], "qos": 3})
    assert names_key(info.value.message, "qos"), info.value.message
    with pytest.raises(ConnectionError, match=r"cannot connect to MQTT broker 127\.0\.0\.1:1 "):
        await open_source(open_mqtt_subscriber, {"topics": ["a"], "port": 1})


# --- PostgreSQL -----------------------------------------------------------------------------


@pytest.fixture(name="postgres")
def fixture_postgres(require_service: Require) -> Any:
    require_service("PostgreSQL", LOCALHOST, 5432)
    engine = sa.create_engine(POSTGRES_URL)
    yield engine
    engine.dispose()


def test_database_writer_upserts_into_postgres(postgres: Any, unique_name: Unique) -> None:
    table = unique_name("po_test_orders")
    config = {"url": POSTGRES_URL, "table": table, "key": "id"}
    batch = [
        {"id": 1, "customer": "ann", "total": 10.5, "paid": True, "lines": [{"sku": "a"}]},
        {"id": 2, "customer": "bob", "total": 3.0, "paid": False, "lines": []},
    ]
    ctx = make_ctx("sink")
    try:
        for _ in range(2):  # a replay of the same batch changes nothing
            result = call(database_writer_plugin, {"batch": batch}, config, ctx)
            assert result == {"written": 2, "table": table}
        update = [{"id": 2, "customer": "BOB", "total": 4.0}, {"id": 3, "customer": "cid"}]
        call(database_writer_plugin, {"records": update}, config, ctx)
        with postgres.connect() as connection:
            stored = connection.execute(
                sa.text(f"SELECT id, customer, total, paid, lines FROM {table} ORDER BY id")
            ).all()
            types = dict(
                connection.execute(
                    sa.text(
                        "SELECT column_name, data_type FROM information_schema.columns "
                        "WHERE table_name = :table"
                    ),
                    {"table": table},
                ).all()
            )
        assert [tuple(row) for row in stored] == [
            (1, "ann", 10.5, True, [{"sku": "a"}]),
            (2, "BOB", 4.0, False, []),
            (3, "cid", None, None, None),
        ]
        assert types == {
            "id": "bigint",
            "customer": "text",
            "total": "double precision",
            "paid": "boolean",
            "lines": "json",
        }
        error = None
        try:
            call(database_writer_plugin, {"in": [{"id": "not a number"}]}, config, ctx)
        except PluginError as exc:
            error = exc
        assert error is not None
        assert error.code is PluginErrorCode.PluginExecutionFailed
        assert table in error.message
    finally:
        with postgres.begin() as connection:
            connection.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))


# --- the require_service fixture --------------------------------------------------------------


def test_require_service_skips_locally_and_fails_in_ci(
    require_service: Require, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"Nothing is not reachable at 127\.0\.0\.1:1"):
        require_service("Nothing", LOCALHOST, 1)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="in CI"):
        require_service("Nothing", LOCALHOST, 1)
