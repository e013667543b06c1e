"""Long-running executions end to end with the machine's brokers and databases: the spec's
streaming pipeline (source, filter, transform, database writer) from Redis Streams and NATS
JetStream into SQLite and PostgreSQL, and an EventDriven run fed by MQTT."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import sqlalchemy as sa

from engine import (
    AdvancedPluginOrchestrator,
    ConnectionType,
    PluginWorkflow,
    WorkflowConnection,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
    WorkflowNode,
    WorkflowNodeType,
)
from tests.helpers.waiting import eventually

Require = Callable[[str, str, int], None]
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def spec_streaming_pipeline(
    workflow_id: str, source_plugin: str, source_config: dict[str, Any], sink: dict[str, Any]
) -> PluginWorkflow:
    """The spec's "Streaming Data Pipeline": source (raw_data) -> filter -> transform ->
    output, with its ports."""
    return PluginWorkflow(
        workflow_id=workflow_id,
        name="Real-time Data Processing",
        execution_mode=WorkflowExecutionMode.Streaming,
        nodes=[
            WorkflowNode(
                node_id="data_source",
                plugin_id=source_plugin,
                node_type=WorkflowNodeType.Source,
                output_ports=["raw_data"],
                configuration=source_config,
            ),
            WorkflowNode(
                node_id="filter",
                plugin_id="data_filter",
                input_ports=["input"],
                output_ports=["filtered_data"],
                configuration={"condition": "amount >= 10"},
            ),
            WorkflowNode(
                node_id="transform",
                plugin_id="data_transformer",
                input_ports=["input"],
                output_ports=["transformed_data"],
                configuration={"set": {"total": "amount * 2", "label": "name.upperAscii()"}},
            ),
            WorkflowNode(
                node_id="output",
                plugin_id="database_writer",
                node_type=WorkflowNodeType.Sink,
                input_ports=["data"],
                configuration=sink,
            ),
        ],
        connections=[
            WorkflowConnection(
                source_node="data_source",
                source_port="raw_data",
                target_node="filter",
                target_port="input",
            ),
            WorkflowConnection(
                source_node="filter",
                source_port="filtered_data",
                target_node="transform",
                target_port="input",
            ),
            WorkflowConnection(
                source_node="transform",
                source_port="transformed_data",
                target_node="output",
                target_port="data",
            ),
        ],
        global_configuration={"batch_size": 100, "batch_max_wait": 0.1},
    )


def _rows(url: str, table: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            result = connection.execute(sa.text(f"SELECT * FROM {table} ORDER BY id"))
            return [dict(row._mapping) for row in result]
    finally:
        engine.dispose()


async def test_redis_stream_to_sqlite(
    orchestrator: AdvancedPluginOrchestrator,
    worker: object,
    unique,
    require_service: Require,
    tmp_path: Path,
) -> None:
    require_service("Redis", "127.0.0.1", 6379)
    import redis.asyncio as aioredis

    stream = f"orders-{uuid.uuid4().hex[:8]}"
    redis = aioredis.from_url("redis://127.0.0.1:6379/0")
    try:
        for i in range(250):
            await redis.xadd(
                stream, {"json": json.dumps({"id": i, "name": f"n{i}", "amount": i % 20})}
            )
        url = f"sqlite:///{tmp_path / 'orders.db'}"
        definition = spec_streaming_pipeline(
            unique("redis-stream"),
            "redis_stream_source",
            {"stream": stream, "group": "orders-loader", "stop_when_empty": True},
            {"url": url, "table": "orders", "key": "id"},
        )
        await orchestrator.register_workflow(definition)
        execution_id = await orchestrator.execute_workflow(definition.workflow_id)
        context = await orchestrator.wait_for_completion(execution_id, 60)
        assert context.status is WorkflowExecutionStatus.Completed, context.error_messages
        rows = _rows(url, "orders")
        expected = [i for i in range(250) if i % 20 >= 10]
        assert [row["id"] for row in rows] == expected
        assert rows[0]["total"] == rows[0]["amount"] * 2
        assert rows[0]["label"] == "N10"
        assert context.node_states["filter"]["counters"]["items_in"] == 250
        assert context.node_states["output"]["counters"]["items_out"] == len(expected)
        # Everything read was acknowledged: the group has nothing pending.
        pending = await redis.xpending(stream, "orders-loader")
        assert pending["pending"] == 0
    finally:
        await redis.delete(stream)
        await redis.aclose()


async def test_nats_jetstream_to_postgres(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, require_service: Require
) -> None:
    require_service("NATS", "127.0.0.1", 4222)
    require_service("PostgreSQL", "127.0.0.1", 5432)
    import nats

    name = f"orders_{uuid.uuid4().hex[:8]}"
    client = await nats.connect("nats://127.0.0.1:4222")
    table = f"t_{name}"
    try:
        js = client.jetstream()
        await js.add_stream(name=name, subjects=[f"{name}.in"])
        for i in range(120):
            await js.publish(
                f"{name}.in", json.dumps({"id": i, "name": f"n{i}", "amount": i}).encode()
            )
        definition = spec_streaming_pipeline(
            unique("nats-stream"),
            "nats_jetstream_source",
            {"stream": name, "subject": f"{name}.in", "stop_when_empty": True},
            {"url": POSTGRES, "table": table, "key": "id"},
        )
        await orchestrator.register_workflow(definition)
        execution_id = await orchestrator.execute_workflow(definition.workflow_id)
        context = await orchestrator.wait_for_completion(execution_id, 60)
        assert context.status is WorkflowExecutionStatus.Completed, context.error_messages
        rows = _rows(POSTGRES, table)
        assert [row["id"] for row in rows] == list(range(10, 120))
    finally:
        await client.close()
        engine = sa.create_engine(POSTGRES)
        with engine.begin() as connection:
            connection.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
        engine.dispose()


async def test_mqtt_events_drive_passes(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, require_service: Require
) -> None:
    require_service("Mosquitto", "127.0.0.1", 1883)
    topic = f"sensors/{uuid.uuid4().hex[:8]}"
    definition = PluginWorkflow(
        workflow_id=unique("mqtt"),
        execution_mode=WorkflowExecutionMode.EventDriven,
        nodes=[
            WorkflowNode(
                node_id="sensor",
                plugin_id="mqtt_subscriber",
                node_type=WorkflowNodeType.Source,
                configuration={"topics": [f"{topic}/#"], "client_id": f"t-{uuid.uuid4().hex[:12]}"},
            ),
            WorkflowNode(node_id="record", plugin_id="echo"),
            WorkflowNode(node_id="alarm", plugin_id="echo"),
        ],
        connections=[
            WorkflowConnection(
                source_node="sensor", target_node="record", connection_type=ConnectionType.Event
            ),
            WorkflowConnection(
                source_node="record",
                target_node="alarm",
                connection_type=ConnectionType.Control,
                properties={"condition": "inputs.payload.temperature > 30"},
            ),
        ],
    )
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)

    async def subscribed() -> bool:
        status = await orchestrator.get_execution_status(execution_id)
        return status.node_states["sensor"]["status"] == "running"

    await eventually(subscribed, lambda ok: ok)
    # Retained, one topic each: the broker hands every message to the subscription whether
    # it is made before or after they are published, so no wait for it is needed.
    rooms = [(f"{topic}/room{i}", temperature) for i, temperature in enumerate((20, 35, 25, 40))]
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    publisher.connect("127.0.0.1", 1883)
    publisher.loop_start()
    try:
        for room, temperature in rooms:
            info = publisher.publish(
                room, json.dumps({"temperature": temperature}), qos=1, retain=True
            )
            info.wait_for_publish(5)
        status = await eventually(
            lambda: orchestrator.get_execution_status(execution_id),
            lambda c: c.execution_data.get("events_processed", 0) == 4,
            timeout=30,
        )
    finally:
        for room, _ in rooms:  # clear the retained messages
            publisher.publish(room, b"", qos=1, retain=True).wait_for_publish(5)
        publisher.loop_stop()
        publisher.disconnect()
    assert status.execution_data["events_received"] == 4
    assert status.node_states["alarm"]["counters"]["completed"] == 2
    assert status.node_states["alarm"]["counters"]["skipped"] == 2
    await orchestrator.cancel_execution(execution_id)
    assert (await orchestrator.wait_for_completion(execution_id, 30)).status is (
        WorkflowExecutionStatus.Cancelled
    )
