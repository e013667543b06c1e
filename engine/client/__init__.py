"""The client: :class:`~engine.client.orchestrator.AdvancedPluginOrchestrator` and what it
builds on (execution handling, listing). The synchronous facade is :mod:`engine.sync`."""
