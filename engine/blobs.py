"""Large node outputs: kept in a blob store, carried through Temporal as references.

Temporal caps a payload at 2 MB and a history at 50 MB, so big data must not travel inside
the workflow. When a node's output is larger than the threshold (256 KiB by default,
``ORCHESTRATOR_BLOB_THRESHOLD`` bytes), the node activity moves its largest top-level values
into the blob store and returns references in their place::

    {"rows": {"$blob": "sha256:9f2c...", "bytes": 52428800, "preview": "[{\\"id\\": 1, ..."},
     "row_count": 500000}

Small values stay inline, so conditions on them (``row_count > 0``) keep working. The next
node's activity resolves references in its inputs before its plugin runs, so plugins never
see them. Results of an execution may hold references; :meth:`BlobStore.get` (or
``AdvancedPluginOrchestrator.read_blob``) reads them.

The store is a directory (``ORCHESTRATOR_BLOB_STORE``, default ``<data dir>/blobs``): one
machine, or a directory every worker mounts (NFS and the like). Blobs are filed by
execution, content-addressed inside it, written atomically, and removed with
``orchestrator blobs gc`` once their execution has ended.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_THRESHOLD = 256 * 1024
REF_KEY = "$blob"
_PREVIEW = 120
_OWNER = "execution_id.txt"
_MAX_DEPTH = 4


def blob_threshold() -> int:
    """Outputs larger than this many bytes of JSON are offloaded."""
    value = os.environ.get("ORCHESTRATOR_BLOB_THRESHOLD", "").strip()
    return int(value) if value.isdigit() else DEFAULT_THRESHOLD


def is_ref(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get(REF_KEY), str)


class BlobStore:
    """A directory of blobs, one subdirectory per execution."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def from_env(cls) -> BlobStore:
        configured = os.environ.get("ORCHESTRATOR_BLOB_STORE", "").strip()
        if configured:
            return cls(Path(configured.removeprefix("file://")).expanduser())
        from engine.embedded import default_data_dir  # the CLI's data directory

        return cls(default_data_dir() / "blobs")

    def _dir(self, execution_id: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", execution_id)
        return self.root / safe

    def put(self, execution_id: str, data: bytes) -> str:
        """Store ``data`` for ``execution_id``; return its reference id (``sha256:...``)."""
        digest = hashlib.sha256(data).hexdigest()
        directory = self._dir(execution_id)
        target = directory / f"{digest}.json"
        if target.exists():
            return f"sha256:{digest}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / _OWNER).write_text(execution_id)
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return f"sha256:{digest}"

    def get(self, ref: dict[str, Any]) -> Any:
        """The value a reference stands for.

        Raises:
            FileNotFoundError: the blob is gone (collected, or another machine's store).
        """
        digest = str(ref[REF_KEY]).removeprefix("sha256:")
        path = self._dir(str(ref.get("execution_id", ""))) / f"{digest}.json"
        return json.loads(path.read_bytes())

    def executions(self) -> list[tuple[str, str, float]]:
        """(execution id, directory, last modification time) of every execution's blobs."""
        if not self.root.exists():
            return []
        found = []
        for entry in self.root.iterdir():
            owner = entry / _OWNER
            if entry.is_dir() and owner.exists():
                found.append((owner.read_text(), entry.name, entry.stat().st_mtime))
        return sorted(found)

    def remove(self, directory_name: str) -> None:
        shutil.rmtree(self.root / directory_name, ignore_errors=True)

    # -- offloading and resolving --------------------------------------------------------

    def offload(
        self, execution_id: str, output: dict[str, Any], threshold: int, limit: int
    ) -> dict[str, Any]:
        """Replace ``output``'s largest top-level values by references until its JSON is at
        most ``threshold`` bytes (values of a few hundred bytes always stay inline)."""
        sizes = {
            key: len(json.dumps(value, separators=(",", ":")).encode())
            for key, value in output.items()
        }
        total = sum(sizes.values()) + 2 * len(sizes) + 2
        if total <= threshold:
            return output
        result = dict(output)
        for key in sorted(sizes, key=sizes.__getitem__, reverse=True):
            if total <= threshold or sizes[key] < 512:
                break
            encoded = json.dumps(output[key], separators=(",", ":")).encode()
            ref = {
                REF_KEY: self.put(execution_id, encoded),
                "bytes": len(encoded),
                "execution_id": execution_id,
                "preview": encoded[:_PREVIEW].decode(errors="replace"),
            }
            result[key] = ref
            total += len(json.dumps(ref)) - sizes[key]
        if total > limit:
            raise ValueError(
                f"output is {total:,} bytes of JSON even with its large values in the blob "
                f"store (limit {limit:,}): too many keys"
            )
        return result

    def resolve(self, value: Any, depth: int = 0) -> Any:
        """``value`` with every reference (a few levels deep) replaced by its content."""
        if is_ref(value):
            return self.get(value)
        if depth >= _MAX_DEPTH:
            return value
        if isinstance(value, dict):
            return {key: self.resolve(item, depth + 1) for key, item in value.items()}
        if isinstance(value, list):
            return [self.resolve(item, depth + 1) for item in value]
        return value
