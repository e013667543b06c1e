"""Sources: where EventDriven events and Streaming items come from.

A source plugin opens a :class:`Source` from its configuration and a checkpoint. The engine
then loops::

    items = await source.read(max_items, max_wait)   # a micro-batch (maybe empty)
    ...                                              # record / process / write the items
    await source.commit(items)                       # acknowledge: they are done
    checkpoint = source.checkpoint()                 # durable position after them

and stores the checkpoint (heartbeat details, and the workflow's state at continue-as-new,
pause and redeploy), so a source reopened with it resumes after the last committed item.
Delivery is at least once: items read but not committed are read again after a crash, so
each item carries a stable ``item_id`` the engine deduplicates EventDriven events by, and a
sink can be made idempotent by.

The simple way to write one is an async generator; :func:`source_plugin` turns it into a
source whose checkpoint is the number of items committed so far. The generator receives it
and must start after that many items::

    @source_plugin("counter")
    async def counter(config, checkpoint, ctx):
        for i in range(checkpoint or 0, config["n"]):
            yield {"i": i}

Sources that can acknowledge upstream (Redis Streams, NATS JetStream, MQTT) implement the
:class:`Source` protocol directly, usually on :class:`SourceBase`, which has the defaults of
a source whose position is kept upstream. With ``source_plugin(..., config=Model,
passes_model=True)`` the function receives the validated model instead of a dict.

A checkpoint is at most :data:`MAX_CHECKPOINT_BYTES` of compact JSON, whatever the source has
seen: it travels in every heartbeat, in a signal when the source stops, and in the
execution's state across continue-as-new. The engine fails the source with a clear error
(``InvalidOutput``, non-retryable) rather than lose a checkpoint it cannot record.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import inspect
import json
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel

from engine.base.errors import PluginError, PluginErrorCode
from plugins._config import validated
from plugins._context import PluginContext

#: The largest checkpoint a source may report, in bytes of compact JSON. A heartbeat or a
#: signal is capped at 2 MB by Temporal, and the execution carries the checkpoints of all its
#: sources next to its definition across continue-as-new.
MAX_CHECKPOINT_BYTES = 64 * 1024


@dataclass(frozen=True)
class SourceItem:
    """One event or stream item.

    Attributes:
        value: The item itself, a JSON object.
        item_id: Stable identity of the item across redeliveries (a file's path, size and
            modification time; a stream entry id; a message sequence number).
        event_type: For EventDriven routing (``properties.event_type`` of Event connections).
        redelivered: The source may have delivered this item before (MQTT's DUP flag).
    """

    value: dict[str, Any]
    item_id: str
    event_type: str = ""
    redelivered: bool = False


@runtime_checkable
class Source(Protocol):
    """An open source. Methods are called from one task, never concurrently."""

    async def read(self, max_items: int, max_wait: float) -> list[SourceItem]:
        """Return up to ``max_items`` items, waiting at most ``max_wait`` seconds for the
        first; ``[]`` when nothing arrived. Must return promptly when cancelled."""
        ...

    async def commit(self, items: list[SourceItem]) -> None:
        """The items are done downstream: acknowledge them and advance the position."""
        ...

    def checkpoint(self) -> Any:
        """The position after the last committed item, as JSON (None before any)."""
        ...

    @property
    def exhausted(self) -> bool:
        """True when no item will ever come again (a finite source read to its end)."""
        ...

    async def close(self) -> None:
        """Release connections and files."""
        ...


SourceFactory = Callable[[dict[str, Any], Any, PluginContext], Awaitable[Source]]
SourceGenerator = Callable[
    [dict[str, Any], Any, PluginContext], AsyncIterator["SourceItem | dict[str, Any]"]
]
#: A generator or factory given the validated configuration model (``passes_model``).
ModelSourceFunction = Callable[
    [Any, Any, PluginContext], AsyncIterator["SourceItem | dict[str, Any]"] | Awaitable[Source]
]


def source_plugin(
    plugin_id: str,
    *,
    description: str = "",
    config: type[BaseModel] | None = None,
    replays: bool = False,
    passes_model: bool = False,
) -> Callable[[SourceGenerator | SourceFactory | ModelSourceFunction], SourceSpec]:
    """Decorator: an async generator function, or a factory returning a :class:`Source`;
    ``config`` is a pydantic model describing (and checked against) its configuration;
    ``replays`` see :attr:`SourceSpec.replays` (always true for a generator).

    ``passes_model``: the function receives the configuration validated into ``config``
    (keys it does not declare ignored) instead of the dict. A configuration the model
    refuses is ``PluginError(InvalidConfiguration)`` naming the source and the fields, when
    a factory opens or when a generator is first read.
    """
    if passes_model and config is None:
        raise TypeError(f"source '{plugin_id}': passes_model needs a config model")

    def wrap(function: SourceGenerator | SourceFactory | ModelSourceFunction) -> SourceSpec:
        doc = description or (inspect.getdoc(function) or "").split("\n\n")[0]
        if passes_model:
            assert config is not None
            function = _passing_model(function, config, plugin_id)
        if inspect.isasyncgenfunction(function):
            generator = function

            async def open_generator(
                config: dict[str, Any], checkpoint: Any, ctx: PluginContext
            ) -> Source:
                return GeneratorSource(generator(config, checkpoint, ctx), checkpoint)

            return SourceSpec(plugin_id, open_generator, doc, config, replays=True)
        return SourceSpec(plugin_id, function, doc, config, replays=replays)  # type: ignore[arg-type]

    return wrap


def _passing_model(
    function: ModelSourceFunction, model: type[BaseModel], plugin_id: str
) -> SourceGenerator | SourceFactory:
    """``function`` taking the dict the engine hands over: validated into ``model`` first."""
    what = f"source '{plugin_id}'"
    if inspect.isasyncgenfunction(function):
        generator = function

        async def items(
            config: dict[str, Any], checkpoint: Any, ctx: PluginContext
        ) -> AsyncIterator[SourceItem | dict[str, Any]]:
            checked = validated(model, config, what)
            async with contextlib.aclosing(generator(checked, checkpoint, ctx)) as inner:
                async for item in inner:
                    yield item

        return items
    factory = function

    async def open_checked(config: dict[str, Any], checkpoint: Any, ctx: PluginContext) -> Source:
        opened = factory(validated(model, config, what), checkpoint, ctx)
        assert inspect.isawaitable(opened)
        return await opened

    return open_checked


@dataclass(frozen=True)
class SourceSpec:
    """A source plugin: its id, how to open it, and optionally its configuration model and
    output ports (for the catalog and checks at registration).

    ``replays``: reopened with a checkpoint, the source delivers again every item after it,
    in the same order (a generator, a file read by offset). Sources that acknowledge upstream
    (a broker redelivers only what was not acknowledged) leave it false. A stream tells its
    sinks (``PluginContext.stream_replays``), so a sink cuts back a replayed batch only when
    the items after it come again too.
    """

    plugin_id: str
    open: SourceFactory
    description: str = ""
    config_model: type[BaseModel] | None = None
    output_ports: tuple[str, ...] = ()
    replays: bool = False


class SourceBase(abc.ABC):
    """Base of a :class:`Source` whose position is kept upstream (a consumer group, a
    durable consumer, a broker session): ``checkpoint()`` is None, and ``exhausted`` is
    false until the source calls :meth:`mark_exhausted` (a finite run's end). Subclasses
    implement ``read``, ``commit`` and ``close``, and override ``checkpoint`` (and
    ``exhausted``) when they keep a position of their own."""

    _exhausted: bool = False

    @abc.abstractmethod
    async def read(self, max_items: int, max_wait: float) -> list[SourceItem]:
        """See :meth:`Source.read`."""

    @abc.abstractmethod
    async def commit(self, items: list[SourceItem]) -> None:
        """See :meth:`Source.commit`."""

    def checkpoint(self) -> Any:
        """None: the position is kept upstream."""
        return None

    @property
    def exhausted(self) -> bool:
        """False until :meth:`mark_exhausted`."""
        return self._exhausted

    def mark_exhausted(self) -> None:
        """Declare that no item will come again (``exhausted`` turns true)."""
        self._exhausted = True

    @abc.abstractmethod
    async def close(self) -> None:
        """See :meth:`Source.close`."""


class GeneratorSource:
    """Adapts an async generator to :class:`Source`: micro-batches by size and wait; the
    checkpoint is the number of items committed, and that many are skipped on reopen.

    One task drains the generator into a buffer of one batch that :meth:`read` empties, so
    a batch costs a few event-loop steps rather than a task and a timer per item, and the
    generator runs at most one batch ahead. Items buffered but not yet read are not
    committed: after a reopen they are read again.

    :meth:`read` takes items from the buffer only synchronously and waits for more on a
    plain future that the filling task or a timer resolves, so a cancelled read ends
    cancelled, and puts back the items it had taken. (``asyncio.wait_for`` around a queue's
    ``get()`` returned an item that arrived in the loop step its caller was cancelled in
    and dropped the cancellation, on Python 3.11: a stream stopped for a pause or a new
    version kept reading forever.)"""

    def __init__(self, items: AsyncIterator[SourceItem | dict[str, Any]], checkpoint: Any) -> None:
        self._items = items
        self._committed = int(checkpoint or 0)
        # The position of the last item taken: the generator starts after the checkpoint,
        # so ids stay absolute across reopenings (relative ones repeated after every pause,
        # redeploy or continue-as-new, and the engine dropped the new items as duplicates).
        self._position = self._committed
        self._done = False
        self._buffer: deque[SourceItem | dict[str, Any]] = deque()
        self._limit = 1  # the buffer's size: the batch size of the last read
        self._end: _End | None = None  # the generator ended (with its error, if any)
        self._arrived: asyncio.Future[None] | None = None  # read() waits: an item or the end
        self._room: asyncio.Future[None] | None = None  # _fill() waits: the buffer is full
        self._filling: asyncio.Task[None] | None = None

    async def _fill(self) -> None:
        loop = asyncio.get_running_loop()
        buffer = self._buffer
        try:
            async for raw in self._items:
                while len(buffer) >= self._limit:
                    self._room = loop.create_future()
                    await self._room
                buffer.append(raw)
                if self._arrived is not None:  # read() waits
                    _resolve(self._arrived)
            self._end = _End(None)
        except Exception as exc:  # handed to read(), in order, after the items before it
            self._end = _End(exc)
        _resolve(self._arrived)

    async def read(self, max_items: int, max_wait: float) -> list[SourceItem]:
        self._limit = max(1, max_items)
        if self._filling is None:
            self._filling = asyncio.create_task(self._fill())
        batch: list[SourceItem] = []
        buffer = self._buffer
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait
        while len(batch) < max_items and not self._done:
            if buffer:
                position = self._position
                for _ in range(min(max_items - len(batch), len(buffer))):
                    position += 1
                    batch.append(_as_item(buffer.popleft(), position))
                self._position = position
                _resolve(self._room)
                continue
            if self._end is not None:
                self._done = True
                if self._end.error is not None:
                    raise self._end.error
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            arrived = self._arrived = loop.create_future()
            timer = loop.call_later(remaining, _resolve, arrived)
            try:
                await arrived
            except BaseException:  # cancelled: the items taken come with the next read
                buffer.extendleft(reversed(batch))
                self._position -= len(batch)
                raise
            finally:
                timer.cancel()
                self._arrived = None
        return batch

    async def commit(self, items: list[SourceItem]) -> None:
        self._committed += len(items)

    def checkpoint(self) -> Any:
        return self._committed

    @property
    def exhausted(self) -> bool:
        return self._done

    async def close(self) -> None:
        filling, self._filling = self._filling, None
        if filling is not None:
            filling.cancel()
            # Not ``await filling``: its CancelledError and a cancellation of this caller
            # look alike, and the caller's must not be swallowed.
            await asyncio.wait({filling})
        closer = getattr(self._items, "aclose", None)
        if closer is not None:
            with contextlib.suppress(Exception):
                await closer()


@dataclass(frozen=True)
class _End:
    """The generator ended, with the exception it raised if any."""

    error: Exception | None


def _resolve(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


def _as_item(raw: SourceItem | dict[str, Any], position: int) -> SourceItem:
    if isinstance(raw, SourceItem):
        return raw
    if not isinstance(raw, dict):
        raise TypeError(f"a source yielded {type(raw).__name__}, expected a JSON object")
    return SourceItem(raw, str(position))


def checked_checkpoint(checkpoint: Any, plugin_id: str) -> Any:
    """``checkpoint`` itself once it is known to be JSON within :data:`MAX_CHECKPOINT_BYTES`.

    Raises:
        PluginError: ``InvalidOutput`` naming the source, the size and the limit.
    """
    try:
        size = len(json.dumps(checkpoint, separators=(",", ":"), allow_nan=False).encode())
    except (TypeError, ValueError) as exc:
        raise PluginError(
            PluginErrorCode.InvalidOutput,
            f"the checkpoint of source '{plugin_id}' is not JSON: {exc}",
        ) from None
    if size > MAX_CHECKPOINT_BYTES:
        raise PluginError(
            PluginErrorCode.InvalidOutput,
            f"the checkpoint of source '{plugin_id}' is {size:,} bytes of JSON, over the limit "
            f"of {MAX_CHECKPOINT_BYTES:,} (MAX_CHECKPOINT_BYTES); it could not be recorded",
        )
    return checkpoint
