"""``nats_jetstream_source``: a source reading a NATS JetStream stream with a pull consumer.

Works for EventDriven (each message is an event) and Streaming (messages are stream items).

Config:
    servers (list of str, or str): NATS server URLs (default ``["nats://127.0.0.1:4222"]``).
    stream (str, required): The JetStream stream name.
    subject (str, required): The subject (filter) to consume, wildcards allowed.
    durable (str): The durable consumer's name (default derived from the workflow and node
        ids). The server keeps its position and unacknowledged messages across restarts.
    create_stream (bool): Create the stream, capturing ``subject``, if it does not exist
        (default true). An existing stream is used as it is.
    ack_wait (number > 0): Seconds the server waits for an acknowledgement before it
        delivers a message again (default 30). Applies when the consumer is created.
    connect_timeout (number > 0): Seconds to wait for one connection attempt (default 5,
        whole seconds). A few attempts are made half a second apart, at open and after a
        disconnect; then ``ConnectionError`` is raised and the engine reopens the source
        under its retry policy (unacknowledged messages are redelivered).
    stop_when_empty (bool): Mark the source exhausted once a fetch returns nothing (default
        false: wait for more forever). For finite runs and benchmarks.

Items:
    ``value`` is the message body when it is a JSON object, else ``{"text": ...}`` for UTF-8
    text, else ``{"base64": ...}``. ``item_id`` is ``"{stream}:{stream sequence}"``, the same
    for every delivery of one message; ``event_type`` is the message's subject;
    ``redelivered`` is true when the server delivered it before.

Delivery: at least once. ``read`` is ``fetch(batch=max_items, timeout=max_wait)`` on the
pull subscription; the messages are kept until ``commit`` acknowledges each one (``+ACK``,
then a flush so the acknowledgements reach the server). ``close`` negatively acknowledges
(``-NAK``) messages read but not committed, so the server delivers them again at once; after
a crash it does so when ``ack_wait`` runs out.

Checkpoint: ``None``; the durable consumer holds the position on the server.

Connection failures raise ``ConnectionError`` (retryable) naming the servers.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.client import JetStreamContext
from pydantic import Field

from plugins._context import PluginContext
from plugins._source import Source, SourceBase, SourceItem, source_plugin
from plugins.builtin._common import config_error
from plugins.builtin._models import NonEmptyStr, PluginConfig, PositiveSeconds
from plugins.builtin._streams import decode_payload, derived_name

DEFAULT_SERVERS = ["nats://127.0.0.1:4222"]
#: The shortest fetch the client accepts is a little over 0.1 ms; stay well above it.
MIN_FETCH_WAIT = 0.01
RECONNECT_ATTEMPTS = 3
RECONNECT_WAIT = 0.5


class NatsJetStreamSourceConfig(PluginConfig):
    """Configuration of the ``nats_jetstream_source`` source."""

    servers: NonEmptyStr | Annotated[list[NonEmptyStr], Field(min_length=1)] = Field(
        default_factory=lambda: list(DEFAULT_SERVERS), description="NATS server URL(s)."
    )
    stream: NonEmptyStr = Field(description="The JetStream stream name.")
    subject: NonEmptyStr = Field(description="The subject (filter) to consume; wildcards allowed.")
    durable: NonEmptyStr | None = Field(
        None, description="The durable consumer's name (default derived from workflow and node)."
    )
    create_stream: bool = Field(
        True, description="Create the stream, capturing 'subject', if it does not exist."
    )
    ack_wait: PositiveSeconds = Field(
        30.0, description="Seconds before an unacknowledged message is delivered again."
    )
    connect_timeout: PositiveSeconds = Field(
        5.0, description="Seconds to wait for one connection attempt (whole seconds)."
    )
    stop_when_empty: bool = Field(
        False, description="Be exhausted once a fetch returns nothing (finite runs)."
    )


@source_plugin("nats_jetstream_source", config=NatsJetStreamSourceConfig, passes_model=True)
async def open_nats_jetstream_source(
    config: NatsJetStreamSourceConfig, checkpoint: Any, ctx: PluginContext
) -> Source:
    """Messages of a NATS JetStream stream via a durable pull consumer, acked on commit."""
    servers = [config.servers] if isinstance(config.servers, str) else list(config.servers)
    stream, subject = config.stream, config.subject
    durable = config.durable or derived_name("po", ctx.workflow_id, ctx.node_id, max_length=48)

    async def on_error(exc: Exception) -> None:
        ctx.logger.warning("nats_jetstream_source.connection_error", error=str(exc))

    try:
        client = await nats.connect(
            servers=servers,
            connect_timeout=max(round(config.connect_timeout), 1),
            # A few quick attempts, at the first connect and after a disconnect; then the
            # error surfaces and the engine reopens the source under its retry policy.
            max_reconnect_attempts=RECONNECT_ATTEMPTS,
            reconnect_time_wait=RECONNECT_WAIT,
            error_cb=on_error,
            name=durable,
        )
    except (nats.errors.NoServersError, nats.errors.TimeoutError, OSError) as exc:
        raise ConnectionError(f"cannot connect to NATS at {', '.join(servers)}: {exc}") from exc
    try:
        jetstream = client.jetstream()
        if config.create_stream:
            await _ensure_stream(jetstream, stream, subject)
        subscription = await jetstream.pull_subscribe(
            subject,
            durable=durable,
            stream=stream,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=config.ack_wait),
        )
    except BaseException:
        with contextlib.suppress(Exception):
            await client.close()
        raise
    ctx.logger.info("nats_jetstream_source.opened", stream=stream, subject=subject, durable=durable)
    return NatsJetStreamSource(client, subscription, stream, servers, config.stop_when_empty)


class NatsJetStreamSource(SourceBase):
    """The open source; see the module documentation."""

    def __init__(
        self,
        client: NatsClient,
        subscription: JetStreamContext.PullSubscription,
        stream: str,
        servers: list[str],
        stop_when_empty: bool,
    ) -> None:
        self._client = client
        self._subscription = subscription
        self._stream = stream
        self._servers = servers
        self._stop_when_empty = stop_when_empty
        self._unacked: dict[str, Msg] = {}

    async def read(self, max_items: int, max_wait: float) -> list[SourceItem]:
        if self._client.is_closed:
            raise ConnectionError(
                f"the connection to NATS at {', '.join(self._servers)} is closed: "
                f"{self._client.last_error or 'reconnect attempts exhausted'}"
            )
        try:
            messages = await self._subscription.fetch(
                batch=max(max_items, 1), timeout=max(max_wait, MIN_FETCH_WAIT)
            )
        except nats.errors.TimeoutError:
            messages = []
        except (nats.errors.ConnectionClosedError, nats.errors.NoServersError) as exc:
            raise ConnectionError(
                f"lost the connection to NATS at {', '.join(self._servers)}: {exc}"
            ) from exc
        items: list[SourceItem] = []
        for message in messages:
            metadata = message.metadata
            item_id = f"{self._stream}:{metadata.sequence.stream}"
            self._unacked[item_id] = message
            items.append(
                SourceItem(
                    value=decode_payload(message.data),
                    item_id=item_id,
                    event_type=message.subject,
                    redelivered=(metadata.num_delivered or 1) > 1,
                )
            )
        if not items and self._stop_when_empty:
            self.mark_exhausted()
        return items

    async def commit(self, items: list[SourceItem]) -> None:
        acked = False
        for item in items:
            message = self._unacked.pop(item.item_id, None)
            if message is not None:
                with contextlib.suppress(nats.errors.MsgAlreadyAckdError):
                    await message.ack()
                acked = True
        if acked:
            try:
                await self._client.flush()
            except (nats.errors.ConnectionClosedError, nats.errors.TimeoutError) as exc:
                raise ConnectionError(
                    f"could not confirm acknowledgements to NATS at {', '.join(self._servers)}:"
                    f" {exc}"
                ) from exc

    async def close(self) -> None:
        unacked, self._unacked = list(self._unacked.values()), {}
        with contextlib.suppress(Exception):
            for message in unacked:
                await message.nak()
            await self._client.flush()
        with contextlib.suppress(Exception):
            await self._client.close()


async def _ensure_stream(jetstream: JetStreamContext, stream: str, subject: str) -> None:
    try:
        await jetstream.stream_info(stream)
    except nats.js.errors.NotFoundError:
        try:
            await jetstream.add_stream(name=stream, subjects=[subject])
        except nats.js.errors.BadRequestError as exc:
            raise config_error(
                "stream", f"'{stream}' cannot be created for subject '{subject}': {exc}"
            ) from None
