"""Running a batched Splitter map: the items of a map whose body is one plugin node reach that
node's plugin in batches, one runner call (one activity) per batch of up to ``batch_size``
items (:mod:`engine.language.maps`).

Each item is what it is in an unbatched map (:func:`engine.runtime.map_run.run_map_items`):
the splitter completes with ``{"item": item, "index": i}``, the connections into the body
node decide (conditions, ports) whether it runs and with which inputs, and its success, its
failure (``optional`` included) and the item's result and error read exactly as there. Only
the calls are grouped: a :class:`BatchRunner` gets a :class:`BatchCall` and answers with one
outcome per item, so one item's failure never fails the others.

``max_concurrency`` counts items, as without batches: ``max_concurrency // batch_size``
batches are in flight (at least one), each running up to ``max_concurrency`` items at once.
Items are prepared when their batch is about to start, so a workflow task never prepares
more than the items in flight. Pure asyncio: it tests with a fake runner.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from engine.base.errors import PluginErrorCode
from engine.language.engine_nodes import is_engine_node
from engine.language.maps import MapPlan, item_result
from engine.language.models import ConnectionType
from engine.language.options import NodeOptions, node_options, plugin_config
from engine.language.validation import compile_workflow
from engine.runtime.contracts import MAX_PAYLOAD_BYTES
from engine.runtime.interpreter import NodeFailure, NodeSuccess
from engine.runtime.map_run import MapOutcome
from engine.runtime.scheduler import Scheduler


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One item of a batch: its index in the map and the body node's inputs for it."""

    index: int
    inputs: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BatchCall:
    """What a batch runner needs: the body node's call, shared by the items, and the items."""

    execution_id: str
    workflow_id: str
    node_id: str
    node_name: str
    plugin_id: str
    config: dict[str, Any]
    options: NodeOptions
    splitter: str
    items: list[BatchItem]
    concurrency: int  # items of this batch running at once
    pass_id: int = 0


# One item's outcome: its success, or its failure for good.
ItemOutcome = NodeSuccess | NodeFailure


class BatchRunner(Protocol):
    """Runs a batch; answers one outcome per item, in the batch's order."""

    async def __call__(self, call: BatchCall) -> list[ItemOutcome]: ...


def body_node(plan: MapPlan) -> str:
    """The one plugin node a batched map's body holds (validation refuses other maps)."""
    node = plan.body_workflow.node(plan.body[0]) if len(plan.body) == 1 else None
    if node is None or is_engine_node(node.plugin_id):
        raise ValueError(f"Splitter '{plan.splitter}': batch_size needs one plugin node")
    return node.node_id


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), default=str))


class _Items:
    """The per-item side of a batched map: preparing an item's call, settling its outcome,
    and the results, errors and counts they add up to."""

    def __init__(
        self,
        plan: MapPlan,
        size: int,
        meter_conditions: Callable[[], bool] | None,
    ) -> None:
        self.plan = plan
        self.graph = compile_workflow(plan.body_workflow, check_maps=False)
        self.node_id = body_node(plan)
        node = self.graph.nodes[self.node_id]
        self.plugin_id = node.plugin_id
        self.optional = node.configuration.get("optional") is True
        self.meter_conditions = meter_conditions
        incoming = self.graph.incoming[self.node_id]
        # Connections that always carry the splitter's whole output decide nothing per item:
        # the node runs with the inputs they give (what the scheduler would find, faster).
        self.plain = all(
            edge.condition is None
            and not edge.on_error
            and not edge.is_default
            and not edge.connection.source_port
            for edge in incoming
        )
        self.data_keys = [e.input_key for e in incoming if e.kind is ConnectionType.DataFlow]
        self.results: list[Any] = [None] * size
        self.errors: list[dict[str, Any]] = []
        self.counts = {"runs": 0, "completed": 0, "failed": 0, "skipped": 0}

    def prepare(self, position: int, index: int, item: Any) -> dict[str, Any] | None:
        """The body node's inputs for an item, or None when its connections skip it (the
        item is then settled)."""
        splitter_output = {"item": item, "index": index}
        if self.plain:
            self.counts["runs"] += 1
            if self.data_keys:
                return dict.fromkeys(self.data_keys, splitter_output)
            return dict(item) if isinstance(item, dict) else {"item": item}
        scheduler = Scheduler(self.graph, {self.plan.splitter: splitter_output})
        if self.meter_conditions is not None:
            scheduler.meter_conditions = self.meter_conditions
        if not scheduler.has_ready():  # its connections were not taken
            self.counts["skipped"] += 1
            self.results[position] = item_result(self.plan, {self.plan.splitter: splitter_output})
            return None
        scheduler.take_next()
        self.counts["runs"] += 1
        input_data = item if isinstance(item, dict) else {"item": item}
        return scheduler.inputs_for(self.node_id, input_data)

    def settle(self, position: int, index: int, item: Any, outcome: ItemOutcome) -> None:
        """Record an item's outcome as an unbatched map's item records it."""
        outputs: dict[str, Any] = {self.plan.splitter: {"item": item, "index": index}}
        # Not isinstance: the workflow sandbox makes each call of it cost microseconds.
        if outcome.__class__ is NodeSuccess:
            self.counts["completed"] += 1
            outputs[self.node_id] = outcome.output
            self.results[position] = item_result(self.plan, outputs)
            return
        failure = cast(NodeFailure, outcome)
        self.counts["failed"] += 1
        if self.optional:  # handled: the item goes on as if the node produced nothing
            self.results[position] = item_result(self.plan, outputs)
            return
        attempts = f"{failure.attempts} attempt{'s' if failure.attempts != 1 else ''}"
        message = (
            f"node '{self.node_id}' (plugin '{self.plugin_id}') failed after {attempts}: "
            f"{failure.error_type}: {failure.message}"
        )
        self.errors.append({"index": index, "error": message})


async def run_batched_items(
    plan: MapPlan,
    items: list[Any],
    *,
    offset: int,
    execution_id: str,
    runner: BatchRunner,
    batch_size: int,
    max_concurrency: int,
    pass_id: int = 0,
    meter_conditions: Callable[[], bool] | None = None,
) -> MapOutcome:
    """Run a batched map's items (``offset`` numbers them) in batches of up to ``batch_size``
    (fewer when their inputs would not fit one payload), in input order; the outcome is the
    one :func:`~engine.runtime.map_run.run_map_items` gives for the same items."""
    state = _Items(plan, len(items), meter_conditions)
    workflow = plan.body_workflow
    node = state.graph.nodes[state.node_id]
    config = plugin_config(workflow.global_configuration, node.configuration)
    options = node_options(workflow.global_configuration, node.configuration)
    # What a batch's items may weigh: a payload, less what every batch carries besides them.
    config_size = _json_size(config)
    budget = MAX_PAYLOAD_BYTES - config_size
    # Each item's inputs hold the splitter's output ({"item": ..., "index": ...}) or a part
    # of it once per DataFlow connection, or the item itself: when the whole list is light
    # enough, no batch can outweigh a payload and items need not be weighed one by one.
    entries = max(1, len(state.data_keys))
    per_item = 64 + max((len(key) for key in state.data_keys), default=0)
    weigh = entries * (_json_size(items) + per_item * len(items)) > budget
    slots = asyncio.Semaphore(max(1, max_concurrency // batch_size))
    concurrency = max(1, min(batch_size, max_concurrency))

    def call_for(batch: list[BatchItem]) -> BatchCall:
        return BatchCall(
            execution_id=execution_id,
            workflow_id=workflow.workflow_id,
            node_id=state.node_id,
            node_name=node.name,
            plugin_id=node.plugin_id,
            config=config,
            options=options,
            splitter=plan.splitter,
            items=batch,
            concurrency=concurrency,
            pass_id=pass_id,
        )

    broken: list[BaseException] = []  # a runner that raised: no more batches start

    async def run(batch: list[BatchItem]) -> None:
        try:
            outcomes = await runner(call_for(batch))
        except BaseException as exc:
            broken.append(exc)
            raise
        finally:
            slots.release()
        if len(outcomes) != len(batch):
            raise RuntimeError(f"a batch of {len(batch)} items came back with {len(outcomes)}")
        for entry, outcome in zip(batch, outcomes, strict=True):
            position = entry.index - offset
            state.settle(position, entry.index, items[position], outcome)

    tasks: list[asyncio.Task[None]] = []
    try:
        position = 0
        while position < len(items):
            await slots.acquire()
            if broken:
                slots.release()
                break
            batch: list[BatchItem] = []
            weight = 0
            while position < len(items) and len(batch) < batch_size:
                index = offset + position
                inputs = state.prepare(position, index, items[position])
                if inputs is None:
                    position += 1
                    continue
                size = _json_size(inputs) if weigh else 0
                if size > budget:  # as an unbatched item: refused before any activity
                    state.settle(
                        position,
                        index,
                        items[position],
                        _too_large(node.node_id, size + config_size),
                    )
                    position += 1
                    continue
                if batch and weight + size > budget:
                    state.counts["runs"] -= 1  # prepared again as the next batch's first
                    break
                batch.append(BatchItem(index, inputs))
                weight += size
                position += 1
            if batch:
                tasks.append(asyncio.create_task(run(batch)))
            else:
                slots.release()
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    state.errors.sort(key=lambda error: int(error["index"]))
    return MapOutcome(state.results, state.errors, {state.node_id: state.counts})


def _too_large(node_id: str, size: int) -> NodeFailure:
    return NodeFailure(
        f"inputs and configuration of node '{node_id}' are {size:,} bytes of JSON; "
        f"the limit is {MAX_PAYLOAD_BYTES:,} bytes",
        error_type=PluginErrorCode.InvalidOutput.value,
        attempts=0,
    )
