"""Kept copies of definitions (engine.client.definition_reads) against the real server: a
copy is used while the entity's memo shows its version, and never once another client
changed the definition, unregistered it, or registered another one under the same id."""

from __future__ import annotations

import pytest
from temporalio.client import Client

from engine import AdvancedPluginOrchestrator, PluginError, PluginErrorCode
from engine.runtime.contracts import definition_entity_id
from engine.temporal.registry import VERSION_MEMO_KEY
from tests.helpers.builders import chain, node
from tests.helpers.waiting import eventually


async def _other(client: Client, task_queue: str) -> AdvancedPluginOrchestrator:
    """Another client, as another process would have."""
    other_client = await Client.connect(
        client.service_client.config.target_host, namespace=client.namespace
    )
    return AdvancedPluginOrchestrator(other_client, task_queue=task_queue)


async def test_a_kept_copy_follows_changes_made_elsewhere(
    orchestrator: AdvancedPluginOrchestrator, client: Client, worker: object, unique
) -> None:
    definition = chain(unique("copy"), 2)
    await orchestrator.register_workflow(definition)
    entity = client.get_workflow_handle(
        definition_entity_id(definition.workflow_id, orchestrator.task_queue)
    )

    async def memo_version() -> object:
        return await (await entity.describe()).memo_value(VERSION_MEMO_KEY, None)

    # The entity's first workflow task shows the version (a read may come before it).
    await eventually(memo_version, lambda version: version == 1)
    first = await orchestrator.get_workflow(definition.workflow_id)
    kept = await orchestrator.get_workflow(definition.workflow_id)  # from the copy
    assert first == kept
    assert first is not kept
    assert orchestrator._definitions.kept(definition.workflow_id) == 1
    kept.nodes.clear()  # a caller's copy is its own
    assert (await orchestrator.get_workflow(definition.workflow_id)).nodes == definition.nodes

    other = await _other(client, orchestrator.task_queue)
    await other.add_node_to_workflow(definition.workflow_id, node("extra"))
    assert await memo_version() == 2  # the update's workflow task upserted it
    changed = await orchestrator.get_workflow(definition.workflow_id)
    assert changed.version == 2
    assert orchestrator._definitions.kept(definition.workflow_id) == 2
    assert [n.node_id for n in changed.nodes][-1] == "extra"

    # Unregistered elsewhere: not found here, whatever this client kept.
    await other.unregister_workflow(definition.workflow_id)
    with pytest.raises(PluginError) as info:
        await orchestrator.get_workflow(definition.workflow_id)
    assert info.value.code is PluginErrorCode.WorkflowNotFound

    # Registered again elsewhere with other content: version 1 again, a new entity.
    again = chain(definition.workflow_id, 4)
    await other.register_workflow(again)
    reread = await orchestrator.get_workflow(definition.workflow_id)
    assert reread.version == 1
    assert reread.nodes == again.nodes


async def test_a_kept_copy_survives_a_new_entity_with_the_same_version(
    orchestrator: AdvancedPluginOrchestrator, client: Client, worker: object, unique
) -> None:
    """Unregistered and registered again between two reads of this client, with nothing
    read in between: same version number, another run of the entity, other content."""
    definition = chain(unique("again"), 2)
    await orchestrator.register_workflow(definition)
    assert len((await orchestrator.get_workflow(definition.workflow_id)).nodes) == 2
    other = await _other(client, orchestrator.task_queue)
    await other.unregister_workflow(definition.workflow_id)
    await other.register_workflow(chain(definition.workflow_id, 5))
    reread = await orchestrator.get_workflow(definition.workflow_id)
    assert (reread.version, len(reread.nodes)) == (1, 5)
