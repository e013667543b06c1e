"""The plugin catalog: workers publish it, registration checks against it."""

from __future__ import annotations

import pytest
from temporalio.client import Client

from engine import AdvancedPluginOrchestrator, PluginError, PluginErrorCode, WorkflowExecutionStatus
from engine.hosting.worker import EngineWorker, create_worker
from engine.runtime.contracts import (
    CATALOG_WORKERS_MEMO_KEY,
    PUBLISH_SIGNAL,
    CatalogEntry,
    PluginInfo,
    catalog_entity_id,
)
from plugins import PluginRegistry
from tests.helpers.builders import edge, node, workflow
from tests.helpers.waiting import eventually

Code = PluginErrorCode


async def test_workers_publish_their_catalog(
    orchestrator: AdvancedPluginOrchestrator, worker: object
) -> None:
    catalog = {info.plugin_id: info for info in await orchestrator.get_plugin_catalog()}
    assert {"data_source", "echo", "greet", "numbers", "file_system_monitor"} <= set(catalog)
    greet = catalog["greet"]
    assert greet.input_ports == ["person"]
    assert greet.output_ports == ["text"]
    assert greet.config_schema is not None
    assert greet.config_schema["required"] == ["greeting"]
    assert catalog["data_source"].function is True
    assert catalog["data_source"].source is True
    assert catalog["file_system_monitor"].function is False


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({}, "'greeting' is a required property"),
        ({"greeting": "hi", "times": 9}, "times: 9 is greater than the maximum of 5"),
        ({"greeting": "hi", "tims": 2}, "'tims' was unexpected"),
        ({"greeting": 5}, "greeting: 5 is not of type 'string'"),
    ],
)
async def test_bad_configuration_is_refused_at_registration(
    orchestrator: AdvancedPluginOrchestrator,
    worker: object,
    unique,
    config: dict[str, object],
    fragment: str,
) -> None:
    definition = workflow(unique("typed"), [node("hello", "greet", **config)])
    with pytest.raises(PluginError) as info:
        await orchestrator.register_workflow(definition)
    assert info.value.code is Code.InvalidWorkflowStructure
    assert "node 'hello' (plugin 'greet') configuration" in info.value.message
    assert fragment in info.value.message


async def test_global_configuration_fills_declared_fields_only(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    definition = workflow(
        unique("typed-ok"),
        [node("who", "echo", emit={"name": "ada"}), node("hello", "greet", times=2)],
        [edge("who", "hello", target_port="person")],
        greeting="hello",
        unrelated_setting=1,  # other plugins' settings do not trip greet's strict model
    )
    definition.connections[0].source_port = ""
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    context = await orchestrator.wait_for_completion(execution_id, 30)
    assert context.status is WorkflowExecutionStatus.Completed, context.error_messages
    assert context.execution_data["results"]["hello"] == {"text": "hello ada hello ada"}


async def test_modifications_are_checked_too(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    definition = workflow(unique("mod-typed"), [node("a")])
    await orchestrator.register_workflow(definition)
    with pytest.raises(PluginError) as info:
        await orchestrator.add_node_to_workflow(definition.workflow_id, node("b", "missing_plugin"))
    assert info.value.code is Code.PluginNotFound
    assert (await orchestrator.get_workflow(definition.workflow_id)).version == 1


async def test_a_typed_plugin_checks_its_configuration_at_run_time(
    client: Client, task_queue: str, registry: PluginRegistry, unique
) -> None:
    """Registered before any worker published a catalog: the run fails once, clearly."""
    orchestrator = AdvancedPluginOrchestrator(client, task_queue=task_queue)
    definition = workflow(
        unique("late"), [node("hello", "greet", times=0, retry={"max_attempts": 4})]
    )
    await orchestrator.register_workflow(definition)  # no catalog yet: not checked
    async with create_worker(client, task_queue=task_queue, plugins=registry):
        execution_id = await orchestrator.execute_workflow(definition.workflow_id)
        context = await orchestrator.wait_for_completion(execution_id, 30)
    assert context.status is WorkflowExecutionStatus.Failed
    error = context.node_states["hello"]["error"]
    assert error["type"] == "InvalidConfiguration"
    assert "greeting: Field required" in error["message"]
    assert context.node_states["hello"]["attempts"] == 1


async def test_an_expression_that_cannot_compile_is_refused_at_registration(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    """The issue's case: a data_processor filter of "score >= " used to register and fail
    only when the run reached it."""
    definition = workflow(
        unique("expr"),
        [
            node("load", "data_source", records=[{"score": 90}]),
            node("keep", "data_processor", filter="score >= "),
        ],
        [edge("load", "keep")],
    )
    with pytest.raises(PluginError) as info:
        await orchestrator.register_workflow(definition)
    assert info.value.code is Code.InvalidWorkflowStructure
    assert info.value.message == (
        f"workflow '{definition.workflow_id}' is invalid: node 'keep' (plugin 'data_processor') "
        "configuration: filter: 'score >= ' is not valid CEL: syntax error at column 7"
    )
    assert info.value.details["node_id"] == "keep"
    with pytest.raises(PluginError) as missing:
        await orchestrator.get_workflow(definition.workflow_id)
    assert missing.value.code is Code.WorkflowNotFound

    definition.nodes[1].configuration["filter"] = "score >= 80"
    await orchestrator.register_workflow(definition)


async def test_registration_reports_every_problem_at_once(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    definition = workflow(
        unique("every"),
        [
            node("load", "data_source", records=[{"price": 2, "quantity": 3}]),
            node("shape", "data_transformer", set={"total": "price * quantity", "tax": "total *"}),
            node("pick", "json_transform", mapping={"n": "length(shape.items, `2`)"}),
            node("send", "no_such_plugin"),
            node("keep", "data_filter", conditon="total > 1"),
        ],
        [edge("load", "shape"), edge("shape", "pick"), edge("pick", "ghost")],
    )
    with pytest.raises(PluginError) as info:
        await orchestrator.register_workflow(definition)
    error = info.value
    assert error.code is Code.NodeNotFound  # the first problem's code
    assert [(p["code"], p.get("node_id")) for p in error.details["problems"]] == [
        ("NodeNotFound", None),
        ("InvalidWorkflowStructure", "shape"),
        ("InvalidWorkflowStructure", "pick"),
        ("PluginNotFound", "send"),
        ("InvalidWorkflowStructure", "keep"),
    ]
    messages = [p["message"] for p in error.details["problems"]]
    assert "set.tax: 'total *' is not valid CEL: syntax error" in messages[1]
    assert "mapping.n: 'length(shape.items, `2`)' calls 'length' with 2 argument(s)" in messages[2]
    assert "'no_such_plugin', which no worker of this task queue offers" in messages[3]
    assert "'conditon' was unexpected" in messages[4]
    assert "did you mean 'condition'?" in messages[4]
    assert error.message.startswith(f"workflow '{definition.workflow_id}' has 5 problems: ")


async def test_modifications_compile_expressions_too(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    definition = workflow(unique("mod-expr"), [node("a")])
    await orchestrator.register_workflow(definition)
    with pytest.raises(PluginError) as info:
        await orchestrator.add_node_to_workflow(
            definition.workflow_id, node("f", "data_filter", condition="amount >")
        )
    assert info.value.code is Code.InvalidWorkflowStructure
    assert "node 'f' (plugin 'data_filter') configuration: condition: 'amount >'" in (
        info.value.message
    )
    replaced = definition.model_copy(deep=True)
    replaced.nodes.append(node("j", "json_transform", expression="{id: a.id"))
    with pytest.raises(PluginError) as info:
        await orchestrator.update_workflow(replaced)
    assert "expression: '{id: a.id' is not valid JMESPath: the expression is incomplete" in (
        info.value.message
    )
    assert (await orchestrator.get_workflow(definition.workflow_id)).version == 1


async def test_hostile_catalog_entries_cannot_wedge_the_catalog(
    orchestrator: AdvancedPluginOrchestrator, worker: object, client: Client
) -> None:
    """Anyone who can reach Temporal can signal the catalog entity: an entry too large for
    its memo is refused, a flood of identities only pushes out the oldest entries, and the
    entity goes on answering (its memo over Temporal's limit would fail every task)."""
    handle = client.get_workflow_handle(catalog_entity_id(orchestrator.task_queue))
    huge = CatalogEntry(
        identity="intruder",
        plugins=[PluginInfo(plugin_id=f"fake{i}", description="x" * 1500) for i in range(1000)],
    )
    await handle.signal(PUBLISH_SIGNAL, huge)
    for number in range(8):  # eight workers of about 250 KB each: over 1 MB merged
        entry = CatalogEntry(
            identity=f"flood{number}",
            plugins=[PluginInfo(plugin_id=f"flood{number}", description="y" * 250_000)],
        )
        await handle.signal(PUBLISH_SIGNAL, entry)
    await handle.signal(PUBLISH_SIGNAL, CatalogEntry(identity="last", plugins=[]))

    async def workers() -> list[str]:
        return await (await handle.describe()).memo_value(CATALOG_WORKERS_MEMO_KEY, [])

    listed = await eventually(workers, lambda identities: "last" in identities)
    assert "intruder" not in listed
    assert "flood0" not in listed  # the oldest gave way
    catalog = {info.plugin_id for info in await orchestrator.get_plugin_catalog()}
    assert not any(plugin_id.startswith("fake") for plugin_id in catalog)
    # The flood pushed the real worker's entry out too (the newest entries win: an entry
    # left by a killed worker goes first); the entity still takes its entry again, as when
    # the worker restarts, and registration goes on.
    assert isinstance(worker, EngineWorker)
    await worker.publish()
    await eventually(workers, lambda identities: worker.identity in identities)
    await orchestrator.register_workflow(workflow("still-registers", [node("a")]))


async def test_a_stopping_worker_leaves_the_catalog_before_it_stops_polling(
    client: Client, unique
) -> None:
    """The catalog entity runs on the workers it lists: a withdrawal still to be processed
    when the worker stops waits on that worker's sticky queue after it is gone, and the next
    process's worker (the next CLI command) waits for it before its own entry is listed
    (7.6 s here). So the worker leaves first, then stops: the entity has nothing pending."""
    task_queue = unique("catalog-leave")
    handle = client.get_workflow_handle(catalog_entity_id(task_queue))
    for _ in range(2):  # the second worker's entry goes through the first one's history
        worker = create_worker(client, task_queue=task_queue, identity=unique("leaver"))
        async with worker:
            listed = await (await handle.describe()).memo_value(CATALOG_WORKERS_MEMO_KEY, [])
            assert worker.identity in listed
        description = await handle.describe()
        assert worker.identity not in await description.memo_value(CATALOG_WORKERS_MEMO_KEY, [])
        assert not description.raw_description.HasField("pending_workflow_task")
