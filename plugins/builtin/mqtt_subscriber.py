"""``mqtt_subscriber``: an EventDriven source of MQTT messages (Mosquitto and other brokers).

Config:
    host (str): Broker host (default ``127.0.0.1``).
    port (int): Broker port (default 1883).
    topics (list of str, required): Topic filters to subscribe to (wildcards ``+`` and
        ``#`` allowed).
    qos (int 0, 1 or 2): Subscription QoS (default 1). Use 1 for at-least-once; see below.
    client_id (str): The MQTT client id, which names the persistent session on the broker
        (default derived from the workflow and node ids, at most 23 characters). Two clients
        with one id take the session from each other: give concurrently running executions
        of one workflow distinct ids.
    username, password (str): Optional credentials.
    tls (bool): Connect with TLS using the system's trust store (default false).
    keepalive (int >= 5): Seconds between keep-alive pings (default 60).
    connect_timeout (number > 0): Seconds to wait for the broker's CONNACK and SUBACK
        (default 10).

Items (one per message):
    ``value`` is ``{"topic": topic, "payload": ..., "qos": int, "retain": bool}`` where
    ``payload`` is the message body when it is a JSON object, else ``{"text": ...}`` for
    UTF-8 text, else ``{"base64": ...}``. ``event_type`` is the topic (routes the event).
    ``item_id`` is the SHA-256 of the topic, the body and the packet id, so the broker's
    redelivery of an unacknowledged message has the id of the first delivery (packet ids
    come round again only after 65535 messages). QoS 0 messages are never redelivered and
    get a random id instead (identical readings are distinct events). ``redelivered`` is the
    message's DUP flag.

Delivery: at least once for QoS 1. The client connects with MQTT 3.1.1, ``clean_session``
false and manual acknowledgement (paho-mqtt 2): a message is acknowledged (``PUBACK``) only by
``commit``, after the engine recorded it. Messages read but not committed stay unacknowledged
in the broker's session; after a reconnect (a reopen with the same ``client_id``) the broker
delivers them again, with the DUP flag. ``close`` disconnects cleanly without acknowledging
them. The broker keeps the session and queues messages published while nothing is
connected (Mosquitto: up to ``max_queued_messages``, and at most ``max_inflight_messages``
unacknowledged at a time, 20 by default: more wait at the broker until commits make room).

QoS 2 subscriptions are accepted, but MQTT hands a QoS 2 message over at ``PUBREC``, before
the application sees it: a message read but not committed when the worker crashes is lost.
QoS 0 is at most once.

Retained messages: the broker sends a topic's retained message (``retain`` true) when a
subscription is made. To avoid sending them again on every reopen, the source does not
subscribe again when the broker kept the session and the checkpoint shows the same topics and
QoS; when ``topics`` or ``qos`` changed it subscribes to the new set (and unsubscribes filters
no longer listed), and retained messages of the subscribed filters come again.

Checkpoint: ``{"topics": [sorted topic filters], "qos": n}``, the subscriptions the session
holds. The messages and their acknowledgements are in the broker's session, not in it.

Connection failures (refused, unreachable, rejected credentials, a lost connection) raise
``ConnectionError`` (retryable); the engine reopens the source, and the session resumes.
The client does not reconnect by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import ConfigDict, Field, model_validator

from plugins._context import PluginContext
from plugins._source import Source, SourceBase, SourceItem, source_plugin
from plugins.builtin._common import config_error
from plugins.builtin._models import NonEmptyStr, PluginConfig, PositiveSeconds
from plugins.builtin._streams import decode_payload, derived_name

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 1883
MAX_CLIENT_ID = 23


class MqttSubscriberConfig(PluginConfig):
    """Configuration of the ``mqtt_subscriber`` source."""

    model_config = ConfigDict(json_schema_extra={"dependentRequired": {"password": ["username"]}})

    host: NonEmptyStr = Field(DEFAULT_HOST, description="Broker host.")
    port: int = Field(DEFAULT_PORT, ge=1, le=65535, description="Broker port.")
    topics: list[NonEmptyStr] = Field(
        min_length=1, description="Topic filters to subscribe to (wildcards + and # allowed)."
    )
    qos: int = Field(
        1, ge=0, le=2, description="Subscription QoS: 1 for at-least-once (2 is not; 0 at most)."
    )
    client_id: NonEmptyStr | None = Field(
        None,
        description="MQTT client id naming the persistent session (default derived from the "
        "workflow and node ids).",
    )
    username: NonEmptyStr | None = Field(None, description="User name.")
    password: NonEmptyStr | None = Field(None, description="Password (needs 'username').")
    tls: bool = Field(False, description="Connect with TLS using the system's trust store.")
    keepalive: int = Field(60, ge=5, description="Seconds between keep-alive pings.")
    connect_timeout: PositiveSeconds = Field(
        10.0, description="Seconds to wait for the broker's CONNACK and SUBACK."
    )

    @model_validator(mode="after")
    def _password_needs_username(self) -> MqttSubscriberConfig:
        if self.password is not None and self.username is None:
            raise ValueError("'password' needs a 'username'")
        return self


@source_plugin("mqtt_subscriber", config=MqttSubscriberConfig, passes_model=True)
async def open_mqtt_subscriber(
    config: MqttSubscriberConfig, checkpoint: Any, ctx: PluginContext
) -> Source:
    """Messages from MQTT topic filters, acknowledged to the broker on commit."""
    qos = config.qos
    client_id = config.client_id or derived_name(
        "po", ctx.workflow_id, ctx.node_id, max_length=MAX_CLIENT_ID
    )
    if qos == 2:
        ctx.logger.warning(
            "mqtt_subscriber.qos2_not_at_least_once",
            detail="QoS 2 messages are handed over before commit; a crash can lose one",
        )

    source = MqttSubscriber(
        host=config.host,
        port=config.port,
        topics=list(config.topics),
        qos=qos,
        client_id=client_id,
        previous=_restore(checkpoint),
        ctx=ctx,
    )
    try:
        await source.connect(
            username=config.username,
            password=config.password,
            tls=config.tls,
            keepalive=config.keepalive,
            timeout=config.connect_timeout,
        )
    except BaseException:
        await source.close()
        raise
    return source


class _Lost:
    """Queued when the connection ends, to wake a waiting ``read``."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class MqttSubscriber(SourceBase):
    """The open source; see the module documentation (never exhausted)."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        topics: list[str],
        qos: int,
        client_id: str,
        previous: tuple[frozenset[str], int] | None,
        ctx: PluginContext,
    ) -> None:
        self._host = host
        self._port = port
        self._topics = topics
        self._qos = qos
        self._client_id = client_id
        self._previous = previous
        self._ctx = ctx
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[SourceItem | _Lost] = asyncio.Queue()
        self._unacked: dict[str, tuple[int, int]] = {}  # item id -> (packet id, qos)
        self._connack: asyncio.Future[tuple[ReasonCode, bool] | _Lost] = self._loop.create_future()
        self._suback: asyncio.Future[list[ReasonCode] | _Lost] = self._loop.create_future()
        self._lost: str | None = None
        self._closing = False
        self._started = False
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            reconnect_on_failure=False,
            manual_ack=True,
        )
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect

    @property
    def _where(self) -> str:
        return f"MQTT broker {self._host}:{self._port} (client id '{self._client_id}')"

    async def connect(
        self,
        *,
        username: str | None,
        password: str | None,
        tls: bool,
        keepalive: int,
        timeout: float,
    ) -> None:
        """Connect and wait for CONNACK; subscribe and wait for SUBACK unless the broker kept
        the session with these very subscriptions."""
        client = self._client
        if username is not None:
            client.username_pw_set(username, password)
        if tls:
            client.tls_set()
        client.connect_timeout = timeout
        try:
            await asyncio.to_thread(client.connect, self._host, self._port, keepalive)
        except OSError as exc:
            raise ConnectionError(f"cannot connect to {self._where}: {exc}") from exc
        client.loop_start()
        self._started = True
        connack = await self._wait(self._connack, timeout, "CONNACK")
        if isinstance(connack, _Lost):
            raise ConnectionError(f"{self._where} closed the connection: {connack.reason}")
        reason, session_present = connack
        if reason.is_failure:
            raise ConnectionError(f"{self._where} refused the connection: {reason}")
        wanted = (frozenset(self._topics), self._qos)
        if session_present and self._previous == wanted:
            # Subscribing again would make the broker resend retained messages: duplicates.
            self._ctx.logger.info(
                "mqtt_subscriber.session_resumed", client_id=self._client_id, topics=self._topics
            )
            return
        if self._previous is not None and not session_present:
            self._ctx.logger.warning(
                "mqtt_subscriber.session_lost",
                client_id=self._client_id,
                detail="the broker no longer had the session; messages queued in it are gone",
            )
        if session_present and self._previous is not None:
            stale = sorted(self._previous[0] - wanted[0])
            if stale:
                client.unsubscribe(stale)
        await self._subscribe(timeout)

    async def _subscribe(self, timeout: float) -> None:
        client = self._client
        result, _mid = client.subscribe([(topic, self._qos) for topic in self._topics])
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"cannot subscribe at {self._where}: {mqtt.error_string(result)}")
        granted = await self._wait(self._suback, timeout, "SUBACK")
        if isinstance(granted, _Lost):
            raise ConnectionError(f"{self._where} closed the connection: {granted.reason}")
        refused = [
            topic for topic, code in zip(self._topics, granted, strict=False) if code.is_failure
        ]
        if refused:
            raise config_error(
                "topics", f"{self._where} refused the subscription to {', '.join(refused)}"
            )
        self._ctx.logger.info(
            "mqtt_subscriber.subscribed",
            host=self._host,
            port=self._port,
            client_id=self._client_id,
            topics=self._topics,
            qos=self._qos,
        )

    async def read(self, max_items: int, max_wait: float) -> list[SourceItem]:
        batch: list[SourceItem] = []
        if self._queue.empty():
            if self._lost is not None:
                raise ConnectionError(f"lost the connection to {self._where}: {self._lost}")
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns a message that
            # arrives in the loop step its caller is cancelled in and drops the cancellation
            # (a stopped stream went on reading); a message left in the queue then waits.
            try:
                async with asyncio.timeout(max(max_wait, 0.0)):
                    first = await self._queue.get()
            except TimeoutError:
                return []
            if not self._take(first, batch):
                raise ConnectionError(f"lost the connection to {self._where}: {self._lost}")
        while len(batch) < max(max_items, 1) and not self._queue.empty():
            if not self._take(self._queue.get_nowait(), batch):
                break  # report the loss on the next read, after these items
        return batch

    def _take(self, entry: SourceItem | _Lost, batch: list[SourceItem]) -> bool:
        if isinstance(entry, _Lost):
            self._lost = entry.reason
            return False
        batch.append(entry)
        return True

    async def commit(self, items: list[SourceItem]) -> None:
        for item in items:
            pending = self._unacked.pop(item.item_id, None)
            if pending is None:
                continue
            mid, qos = pending
            result = self._client.ack(mid, qos)
            if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
                # Not acknowledged: the broker redelivers it after the reconnect (same id).
                self._ctx.logger.warning(
                    "mqtt_subscriber.ack_failed", mid=mid, error=mqtt.error_string(result)
                )

    def checkpoint(self) -> Any:
        return {"topics": sorted(self._topics), "qos": self._qos}

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._unacked.clear()  # never acknowledged: the broker keeps them for the session
        with contextlib.suppress(Exception):
            self._client.disconnect()
        if self._started:
            await asyncio.to_thread(self._client.loop_stop)

    # --- paho callbacks (the network thread) ----------------------------------------------

    def _call(self, function: Any, *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the event loop is already closed
            self._loop.call_soon_threadsafe(function, *args)

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        self._call(_resolve, self._connack, (reason_code, bool(flags.session_present)))

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Any,
    ) -> None:
        self._call(_resolve, self._suback, reason_codes)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            item = _item(message)
        except Exception as exc:  # an exception here would end paho's network thread
            self._ctx.logger.error("mqtt_subscriber.bad_message", mid=message.mid, error=str(exc))
            return
        self._call(self._deliver, item, message.mid, message.qos)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        self._call(self._disconnected, str(reason_code))

    # --- back on the event loop ---------------------------------------------------------------

    def _deliver(self, item: SourceItem, mid: int, qos: int) -> None:
        if self._closing:
            return
        if qos > 0:
            self._unacked[item.item_id] = (mid, qos)
        self._queue.put_nowait(item)

    def _disconnected(self, reason: str) -> None:
        lost = _Lost(reason)
        _resolve(self._connack, lost)
        _resolve(self._suback, lost)
        if not self._closing:
            self._ctx.logger.warning("mqtt_subscriber.disconnected", reason=reason)
            self._queue.put_nowait(lost)

    async def _wait(self, future: asyncio.Future[Any], timeout: float, what: str) -> Any:
        try:
            async with asyncio.timeout(timeout):  # see read(): wait_for can drop a cancellation
                return await asyncio.shield(future)
        except TimeoutError:
            raise ConnectionError(f"no {what} from {self._where} within {timeout:g} s") from None


def _restore(checkpoint: Any) -> tuple[frozenset[str], int] | None:
    """The subscriptions a checkpoint records, or None."""
    if not isinstance(checkpoint, dict):
        return None
    topics, qos = checkpoint.get("topics"), checkpoint.get("qos")
    if not isinstance(topics, list) or not all(isinstance(topic, str) for topic in topics):
        return None
    if qos not in (0, 1, 2):
        return None
    return frozenset(topics), int(qos)


def _resolve(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _item(message: mqtt.MQTTMessage) -> SourceItem:
    topic = message.topic  # UnicodeDecodeError for a topic that is not UTF-8
    payload = bytes(message.payload)
    digest = hashlib.sha256()
    if message.qos == 0:  # never redelivered: identical readings must stay distinct events
        digest.update(uuid.uuid4().bytes)
    for part in (topic.encode("utf-8"), payload, str(message.mid).encode("ascii")):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return SourceItem(
        value={
            "topic": topic,
            "payload": decode_payload(payload),
            "qos": message.qos,
            "retain": bool(message.retain),
        },
        item_id=digest.hexdigest(),
        event_type=topic,
        redelivered=bool(message.dup),
    )
