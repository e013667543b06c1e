"""The durable registry against the real server: register, read, list, modify, unregister."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import Client

from engine import AdvancedPluginOrchestrator, PluginError, PluginErrorCode
from tests.helpers.builders import chain, edge, node

Code = PluginErrorCode


async def _code(awaitable: object) -> PluginErrorCode:
    with pytest.raises(PluginError) as info:
        await awaitable  # type: ignore[misc]
    return info.value.code


async def test_register_get_list_unregister(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    definition = chain(unique("reg"), 3)
    await orchestrator.register_workflow(definition)
    stored = await orchestrator.get_workflow(definition.workflow_id)
    assert stored.version == 1
    assert stored.model_copy(update={"version": 0}) == definition
    assert definition.workflow_id in await orchestrator.get_registered_workflows()

    assert await _code(orchestrator.register_workflow(definition)) is Code.WorkflowAlreadyExists

    await orchestrator.unregister_workflow(definition.workflow_id)
    assert definition.workflow_id not in await orchestrator.get_registered_workflows()
    assert await _code(orchestrator.get_workflow(definition.workflow_id)) is Code.WorkflowNotFound
    assert (
        await _code(orchestrator.unregister_workflow(definition.workflow_id))
        is Code.WorkflowNotFound
    )

    # The id can be registered again; versions start over.
    await orchestrator.register_workflow(definition)
    assert (await orchestrator.get_workflow(definition.workflow_id)).version == 1


async def test_registry_is_shared_between_processes(
    orchestrator: AdvancedPluginOrchestrator, client: Client, worker: object, unique
) -> None:
    definition = chain(unique("shared"), 2)
    await orchestrator.register_workflow(definition)
    # A second client, as another process would have: it reads the same definition.
    other_client = await Client.connect(
        client.service_client.config.target_host, namespace=client.namespace
    )
    other = AdvancedPluginOrchestrator(other_client, task_queue=orchestrator.task_queue)
    assert (await other.get_workflow(definition.workflow_id)).nodes == definition.nodes
    await other.add_node_to_workflow(definition.workflow_id, node("extra"))
    assert (await orchestrator.get_workflow(definition.workflow_id)).version == 2


async def test_invalid_registration_stores_nothing(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    definition = chain(unique("bad"), 2)
    definition.connections.append(edge("n1", "n0"))
    assert await _code(orchestrator.register_workflow(definition)) is Code.CircularDependency
    assert await _code(orchestrator.get_workflow(definition.workflow_id)) is Code.WorkflowNotFound


async def test_modifications_bump_version_and_bad_ones_change_nothing(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    workflow_id = unique("mod")
    await orchestrator.register_workflow(chain(workflow_id, 2))
    await orchestrator.add_node_to_workflow(workflow_id, node("n2"))
    await orchestrator.add_connection_to_workflow(workflow_id, edge("n1", "n2"))
    current = await orchestrator.get_workflow(workflow_id)
    assert current.version == 3
    assert [n.node_id for n in current.nodes] == ["n0", "n1", "n2"]

    assert (
        await _code(orchestrator.add_connection_to_workflow(workflow_id, edge("n2", "n0")))
        is Code.CircularDependency
    )
    assert (
        await _code(orchestrator.add_connection_to_workflow(workflow_id, edge("n2", "zz")))
        is Code.NodeNotFound
    )
    assert await _code(orchestrator.add_node_to_workflow(workflow_id, node("n0"))) is (
        Code.InvalidWorkflowStructure
    )
    assert await _code(orchestrator.remove_node_from_workflow(workflow_id, "zz")) is (
        Code.NodeNotFound
    )
    assert (await orchestrator.get_workflow(workflow_id)) == current  # nothing changed

    await orchestrator.remove_node_from_workflow(workflow_id, "n1")
    after = await orchestrator.get_workflow(workflow_id)
    assert after.version == 4
    assert [n.node_id for n in after.nodes] == ["n0", "n2"]
    assert after.connections == []

    replaced = await orchestrator.update_workflow(chain(workflow_id, 5))
    assert replaced.version == 5
    assert len(replaced.nodes) == 5


async def test_unknown_ids(orchestrator: AdvancedPluginOrchestrator, worker: object) -> None:
    assert await _code(orchestrator.get_workflow("no-such-workflow")) is Code.WorkflowNotFound
    assert await _code(orchestrator.get_workflow("bad id!")) is Code.WorkflowNotFound
    assert await _code(orchestrator.get_workflow("x" * 2000)) is Code.WorkflowNotFound
    assert await _code(orchestrator.execute_workflow("no-such-workflow")) is Code.WorkflowNotFound
    assert (
        await _code(orchestrator.add_node_to_workflow("no-such-workflow", node("a")))
        is Code.WorkflowNotFound
    )


async def test_concurrent_reads_of_a_definition_all_answer(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    """Twenty reads at once, on a worker without a workflow cache (whose SDK drops queries
    buffered behind another task): they share one query, and each gets its own copy."""
    definition = chain(unique("read"), 3)
    await orchestrator.register_workflow(definition)
    reads = await asyncio.gather(
        *(orchestrator.get_workflow(definition.workflow_id) for _ in range(20))
    )
    assert {read.version for read in reads} == {1}
    assert all(read.nodes == definition.nodes for read in reads)
    assert len({id(read) for read in reads}) == 20
    await orchestrator.add_node_to_workflow(definition.workflow_id, node("extra"))
    assert (await orchestrator.get_workflow(definition.workflow_id)).version == 2
