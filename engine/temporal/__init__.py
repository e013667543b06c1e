"""The Temporal glue: the generic workflow that interprets a definition, the registry and
catalog entities, the sandbox, client-side history replay, search attributes and tracing,
the blob store, and turning Temporal's errors into the engine's."""
