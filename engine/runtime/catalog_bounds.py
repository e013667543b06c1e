"""Bounds on a task queue's plugin catalog entity (``engine.temporal.registry.PluginCatalog``).

Anyone who can reach Temporal can signal the catalog entity a ``publish``, not only the
engine's workers. An entry is advisory (workers run their own allowlist and check
configurations again when a node runs), but its size is not: the entity keeps the merged
catalog in its memo, and a memo over the server's limit fails the entity's workflow task for
good, so registration would stop. So an entry is refused when it is larger than one worker's
catalog plausibly is, and the oldest entries give way when there are more workers, or more
catalog in all, than the memo can hold.
"""

from __future__ import annotations

from engine.runtime.bounds import json_bytes
from engine.runtime.contracts import CatalogEntry, merge

# One worker's entry: the built-ins are about 27 KB of JSON (17 plugins with their schemas).
MAX_CATALOG_ENTRY_BYTES = 256 * 1024
# Plugins one worker may describe.
MAX_CATALOG_PLUGINS = 1000
# Characters of a worker's identity.
MAX_CATALOG_IDENTITY_CHARS = 256
# Workers one catalog lists; the oldest entries give way beyond.
MAX_CATALOG_WORKERS = 200
# Bytes of the merged catalog in the memo: below the SDK's 512 KB payload warning, far below
# Temporal's 2 MB memo and 4 MB message limits (about 15 times the built-ins' catalog).
MAX_CATALOG_BYTES = 400 * 1024


def entry_problem(entry: CatalogEntry) -> str | None:
    """Why ``entry`` is refused, or None."""
    if not entry.identity or len(entry.identity) > MAX_CATALOG_IDENTITY_CHARS:
        return f"a worker identity must be 1-{MAX_CATALOG_IDENTITY_CHARS} characters"
    if len(entry.plugins) > MAX_CATALOG_PLUGINS:
        return f"{len(entry.plugins):,} plugins, over the limit of {MAX_CATALOG_PLUGINS:,}"
    size = json_bytes(entry.model_dump(mode="json"))
    if size > MAX_CATALOG_ENTRY_BYTES:
        return f"{size:,} bytes of JSON, over the limit of {MAX_CATALOG_ENTRY_BYTES:,}"
    return None


def with_entry(entries: list[CatalogEntry], entry: CatalogEntry) -> list[CatalogEntry]:
    """The entries once ``entry`` replaced its worker's earlier one (an entry already
    checked by :func:`entry_problem`): the oldest give way while there are more than
    ``MAX_CATALOG_WORKERS`` or the merged catalog is over ``MAX_CATALOG_BYTES``."""
    kept = [e for e in entries if e.identity != entry.identity] + [entry]
    while len(kept) > MAX_CATALOG_WORKERS:
        kept.pop(0)
    while len(kept) > 1 and over_size(kept):
        kept.pop(0)
    return kept


def over_size(entries: list[CatalogEntry]) -> bool:
    merged = [info.model_dump(mode="json") for info in merge(entries).values()]
    return json_bytes(merged) > MAX_CATALOG_BYTES
