"""Large node outputs: kept in a blob store, carried through Temporal as references.

Temporal caps a payload at 2 MB and a history at 50 MB, so big data must not travel inside
the workflow. When a node's output is larger than the threshold (256 KiB by default,
``ORCHESTRATOR_BLOB_THRESHOLD`` bytes), the node activity moves its largest top-level values
into the blob store and returns references in their place::

    {"rows": {"$blob": "sha256:9f2c...", "bytes": 52428800, "execution_id": "etl/run-1a2b...",
              "preview": "[{\\"id\\": 1, ...", "signature": "hmac-sha256:5e1f09aa:77c3..."},
     "row_count": 500000}

Small values stay inline, so conditions on them (``row_count > 0``) keep working. The next
node's activity resolves references in its inputs (a few levels deep) before its plugin runs,
so plugins never see them. Results of an execution may hold references;
:meth:`BlobStore.get` (or ``AdvancedPluginOrchestrator.read_blob``) reads them.

Blobs are filed by execution, content-addressed inside it (``<execution>/<sha256>.json``, with
``<execution>/execution_id.txt`` naming the real execution id), and removed with
``orchestrator blobs-gc`` once their execution has ended. ``ORCHESTRATOR_BLOB_STORE`` picks
the store; every worker and the orchestrator must be configured alike:

* a local directory (the default, ``<data dir>/blobs``; or a path, optionally ``file://...``):
  one machine, or a directory every worker mounts (NFS and the like). Writes are atomic.
  :class:`LocalBlobStore`.
* ``s3://bucket/optional/prefix``: an S3 bucket on AWS or any S3-compatible store (MinIO,
  Ceph, Cloudflare R2, ...). :class:`S3BlobStore`; needs ``boto3`` (the ``s3`` extra:
  ``pip install 'plugin-orchestrator[s3]'``). Keys are ``<prefix>/<execution>/...``. Its
  settings are the standard AWS ones from the environment (or a profile, or an instance
  role): ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` (``AWS_SESSION_TOKEN``),
  ``AWS_REGION`` or ``AWS_DEFAULT_REGION``; plus, for a store other than AWS,
  ``ORCHESTRATOR_S3_ENDPOINT_URL`` (or the standard ``AWS_ENDPOINT_URL_S3`` /
  ``AWS_ENDPOINT_URL``), e.g. ``http://minio:9000``. With an endpoint set, requests use
  path-style addressing (``<endpoint>/<bucket>/<key>``), which S3-compatible stores accept;
  ``ORCHESTRATOR_S3_ADDRESSING_STYLE=virtual`` (or ``auto``) overrides it. A store that
  rejects boto3's newer default checksums takes the standard
  ``AWS_REQUEST_CHECKSUM_CALCULATION=when_required``. Writes are single PUTs (atomic in S3),
  and an existing blob is not uploaded again. A missing bucket, rejected credentials or an
  unreachable endpoint raise :class:`BlobStoreError` naming the bucket and the endpoint.

Which references are resolved
-----------------------------

A value shaped like a reference can arrive in data the engine does not control: the
execution's input, a client's event, a source's item, a plugin's output (an HTTP answer, a
message). Such a value must never make a worker read a file. So:

* **Only references this engine made are resolved.** :meth:`BlobStore.offload` signs each
  reference it makes: ``"signature": "hmac-sha256:<key id>:<hmac>"``, an HMAC-SHA256 with a
  worker-side key over the execution id, the digest and the byte count. A value whose
  signature does not verify is not a reference: the node's plugin gets it as the plain data
  it is (and a warning is logged); :meth:`BlobStore.get` and ``read_blob`` refuse it with a
  :class:`BlobReferenceError` naming what is wrong. A signature, not engine-owned metadata
  beside the data, because references travel inside the data everywhere: node results, an
  execution's results, a sub-workflow's results in its parent's, a map's items; a signature
  keeps them valid on every one of those paths without a change to the workflow (or its
  recorded histories).
* **A node resolves references of its own execution tree only**: of its execution, its
  parent, its children (sub-workflows, map shards, whose ids extend the parent's). A signed
  reference that leaked out of another run (its results, say) and came back in as data
  stays plain data there. ``read_blob`` reads any execution's blobs: its caller can read
  every execution anyway.
* **Every part is checked**, signed or not: the digest is ``sha256:`` and 64 lowercase hex
  digits, the execution's directory is its sanitized name (never ``.``, ``..`` or hidden),
  S3 keys are built only from those parts, and a local blob's path, once resolved (symlinks
  followed), must stay under the store's root. What is read must have the signed size and
  digest. A genuine reference that fails these store-side checks (someone with access to the
  store replaced a blob or planted a symlink) raises :class:`BlobIntegrityError`: the node
  fails for good, ``read_blob`` raises ``InvalidState``.

The key: ``ORCHESTRATOR_BLOB_KEY`` (at least 32 random bytes in base64; ``openssl rand
-base64 32``) or ``ORCHESTRATOR_BLOB_KEY_FILE`` (a file holding that text), on every worker
and every client that calls ``read_blob``, exactly like ``ORCHESTRATOR_BLOB_STORE``. With
neither set, a local store keeps its key in ``<store>/.blob-key`` (created on first use,
atomically, mode 0600): machines that share the store's directory share its key with it. An
S3 store needs the key set: without it, :meth:`BlobStore.from_env` raises
:class:`BlobStoreError` rather than let each machine make its own key (their references would
then fail each other's checks). Changing the key turns references already made into plain
data: change it only when no execution holding references is running.

References made before they were signed (in the histories of runs in flight at the upgrade)
are refused like any unsigned value, naming the transition switch:
``ORCHESTRATOR_BLOB_UNSIGNED_REFS=accept`` resolves unsigned references too, still only of
the node's own execution tree and with every check above. Set it on the workers (and the
client) only until those runs have ended.

Blob I/O is blocking; the callers run it in threads (``asyncio.to_thread``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import importlib
import json
import os
import re
import secrets
import shutil
import stat
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from engine.base.data_dir import default_data_dir
from engine.base.errors import PluginError, PluginErrorCode

DEFAULT_THRESHOLD = 256 * 1024
REF_KEY = "$blob"
SIGNATURE_KEY = "signature"
KEY_FILE_NAME = ".blob-key"
KEY_BYTES = 32
_PREVIEW = 120
_OWNER = "execution_id.txt"
_MAX_DEPTH = 4
_DELETE_BATCH = 1000  # the most keys one S3 DeleteObjects request takes
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
_SIGNATURE = re.compile(r"hmac-sha256:([0-9a-f]{8}):([0-9a-f]{64})")
# What a signature covers; the version keeps other uses of a key from colliding with it.
_SIGNED = "orchestrator-blob-ref-v1"
_MAX_EXECUTION_ID = 1000  # Temporal's limit on workflow ids

log = structlog.get_logger("engine.temporal.blobs")


def blob_threshold() -> int:
    """Outputs larger than this many bytes of JSON are offloaded."""
    value = os.environ.get("ORCHESTRATOR_BLOB_THRESHOLD", "").strip()
    return int(value) if value.isdigit() else DEFAULT_THRESHOLD


def is_ref(value: Any) -> bool:
    """Whether ``value`` is shaped like a reference; whether the engine made it is
    :meth:`BlobStore.check`'s question."""
    return isinstance(value, dict) and isinstance(value.get(REF_KEY), str)


def contains_refs(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` has something shaped like a reference where
    :meth:`BlobStore.resolve` looks (a loop, not recursion: every node input and every
    item of a batched map is asked)."""
    pending: list[tuple[Any, int]] = [(value, depth)]
    while pending:
        current, level = pending.pop()
        if isinstance(current, dict):
            if isinstance(current.get(REF_KEY), str):
                return True
            children: Any = current.values()
        elif isinstance(current, list):
            children = current
        else:
            continue
        if level < _MAX_DEPTH:
            for child in children:
                if isinstance(child, dict | list):
                    pending.append((child, level + 1))
    return False


class BlobStoreError(RuntimeError):
    """The blob store cannot be used: a missing bucket, rejected credentials, an unreachable
    endpoint, a missing client library, a missing or malformed key."""


class BlobIntegrityError(BlobStoreError):
    """A reference the engine made names a blob the store cannot give back as it was made:
    its path leaves the store (a symlink) or its content is not what was signed. Someone
    changed the store; reading again does not help."""


class BlobReferenceError(ValueError):
    """A value that is not a reference this process may resolve: malformed, unsigned, signed
    with another key, or of another execution tree. A node gets it as plain data."""


def _directory_name(execution_id: str) -> str:
    """The file-system and URL safe name of an execution's directory."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", execution_id)


def _check_directory(name: str) -> None:
    # Never outside one execution's directory, the whole store, or its hidden files (the key).
    if not name or name.startswith(".") or "/" in name or "\\" in name:
        raise ValueError(f"{name!r} is not the directory of an execution's blobs")


def _execution_tree(execution_id: str) -> str:
    """The top execution of ``execution_id``'s tree: children's ids extend their parent's
    (``<workflow>/run-<hex>/<node>...``)."""
    return "/".join(execution_id.split("/", 2)[:2])


# -- the key ---------------------------------------------------------------------------------


class BlobKey:
    """The worker-side secret that signs the references the engine makes (HMAC-SHA256)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < KEY_BYTES:
            raise ValueError(f"a blob key needs at least {KEY_BYTES} bytes")
        self._secret = secret
        # Names the key in signatures and messages, so a mismatch between machines shows.
        self.key_id = hashlib.sha256(b"orchestrator-blob-key-id\0" + secret).hexdigest()[:8]

    @classmethod
    def generate(cls) -> BlobKey:
        """A new random key."""
        return cls(secrets.token_bytes(KEY_BYTES))

    def encoded(self) -> str:
        """The key as base64 text (what ``ORCHESTRATOR_BLOB_KEY`` holds)."""
        return base64.b64encode(self._secret).decode()

    @classmethod
    def parse(cls, text: str, source: str) -> BlobKey:
        """The key in base64 ``text`` (standard or URL-safe alphabet). ``source`` names where
        it came from in errors, which never show the key itself."""
        cleaned = text.strip().replace("-", "+").replace("_", "/")
        try:
            secret = base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise BlobStoreError(f"{source} is not a base64 blob key") from None
        if len(secret) < KEY_BYTES:
            raise BlobStoreError(
                f"{source} holds {len(secret)} bytes; a blob key is at least {KEY_BYTES} "
                "random bytes in base64 (make one with: openssl rand -base64 32)"
            )
        return cls(secret)

    @classmethod
    def from_env(cls) -> BlobKey | None:
        """The key ``ORCHESTRATOR_BLOB_KEY`` or ``ORCHESTRATOR_BLOB_KEY_FILE`` gives, if any."""
        value = os.environ.get("ORCHESTRATOR_BLOB_KEY", "").strip()
        path = os.environ.get("ORCHESTRATOR_BLOB_KEY_FILE", "").strip()
        if value and path:
            raise BlobStoreError(
                "set ORCHESTRATOR_BLOB_KEY or ORCHESTRATOR_BLOB_KEY_FILE, not both"
            )
        if value:
            return cls.parse(value, "ORCHESTRATOR_BLOB_KEY")
        if not path:
            return None
        try:
            text = Path(path).expanduser().read_text()
        except OSError as exc:
            raise BlobStoreError(
                f"the blob key file {path} (ORCHESTRATOR_BLOB_KEY_FILE) cannot be read: "
                f"{exc.strerror or exc}"
            ) from None
        return cls.parse(text, f"the blob key file {path} (ORCHESTRATOR_BLOB_KEY_FILE)")

    @classmethod
    def load_or_create(cls, path: Path) -> BlobKey:
        """The key in ``path``; a new one is written there first if there is none.

        Creation is atomic: the key is written to a private temporary file (mode 0600) that
        is then hard-linked to ``path``, which fails if another process got there first, so
        every process ends up reading the one key the file holds, never a half-written one.
        """
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(handle, "w") as out:
                    out.write(cls.generate().encoded() + "\n")
                    out.flush()
                    os.fsync(out.fileno())
                with contextlib.suppress(FileExistsError):  # another process's came first
                    os.link(temporary, path)
            finally:
                os.unlink(temporary)
        try:
            text = path.read_text()
        except OSError as exc:
            raise BlobStoreError(
                f"the blob key file {path} cannot be read: {exc.strerror or exc}"
            ) from None
        return cls.parse(text, f"the blob key file {path}")

    def sign(self, execution_id: str, digest: str, size: int) -> str:
        """The signature of a reference to ``size`` bytes with ``digest`` of an execution."""
        return f"hmac-sha256:{self.key_id}:{self._mac(execution_id, digest, size)}"

    def verify(self, signature: Any, execution_id: str, digest: str, size: int) -> None:
        """Raise :class:`BlobReferenceError` unless ``signature`` is this key's for them."""
        where = f"blob reference {digest} of execution '{execution_id}'"
        match = _SIGNATURE.fullmatch(signature) if isinstance(signature, str) else None
        if match is None:
            raise BlobReferenceError(f"{where}: its signature is malformed")
        key_id, mac = match.groups()
        if key_id != self.key_id:
            raise BlobReferenceError(
                f"{where}: its signature is by key {key_id}, this process has key "
                f"{self.key_id}: forged, or made where another ORCHESTRATOR_BLOB_KEY is set "
                "(every worker and client must share one key)"
            )
        if not hmac.compare_digest(mac, self._mac(execution_id, digest, size)):
            raise BlobReferenceError(f"{where}: its signature does not verify (forged or altered)")

    def _mac(self, execution_id: str, digest: str, size: int) -> str:
        message = json.dumps([_SIGNED, execution_id, digest, size], separators=(",", ":"))
        return hmac.new(self._secret, message.encode(), hashlib.sha256).hexdigest()


def _unsigned_refs_accepted() -> bool:
    """``ORCHESTRATOR_BLOB_UNSIGNED_REFS``: ``accept`` resolves references made before
    signing (a transition switch), ``refuse`` (the default) does not."""
    value = os.environ.get("ORCHESTRATOR_BLOB_UNSIGNED_REFS", "").strip().lower()
    if value not in ("", "refuse", "accept"):
        raise BlobStoreError(
            f"ORCHESTRATOR_BLOB_UNSIGNED_REFS is {value[:40]!r}; expected 'refuse' (the "
            "default) or 'accept'"
        )
    return value == "accept"


# -- the store -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlobAddress:
    """Where a checked reference's blob is, and what it must be."""

    execution_id: str
    directory: str  # the execution's directory (sanitized)
    digest: str  # 64 lowercase hex digits
    size: int

    @property
    def name(self) -> str:
        return f"{self.digest}.json"

    def __str__(self) -> str:
        return f"blob sha256:{self.digest} of execution '{self.execution_id}'"


class BlobStore(ABC):
    """Where large outputs live: one directory (or key prefix) per execution.

    Args:
        key: Signs and verifies references (default: the store's own, see the module
            documentation).
        accept_unsigned: Resolve references made before they were signed (a transition
            switch: ``ORCHESTRATOR_BLOB_UNSIGNED_REFS=accept``).
    """

    def __init__(self, *, key: BlobKey | None = None, accept_unsigned: bool = False) -> None:
        self._signing_key = key
        self._key_lock = threading.Lock()
        self.accept_unsigned = accept_unsigned

    @classmethod
    def from_env(cls) -> BlobStore:
        """The store ``ORCHESTRATOR_BLOB_STORE`` names (default: ``<data dir>/blobs``), with
        the key and switches from the environment."""
        configured = os.environ.get("ORCHESTRATOR_BLOB_STORE", "").strip()
        if configured:
            return cls.from_location(configured)
        return cls.from_location(str(default_data_dir() / "blobs"))

    @staticmethod
    def from_location(location: str) -> BlobStore:
        """The store at ``location``: ``s3://bucket/prefix``, ``file://path`` or a path."""
        if location.startswith("s3://"):
            return S3BlobStore.from_url(location)
        return LocalBlobStore(
            Path(location.removeprefix("file://")).expanduser(),
            key=BlobKey.from_env(),
            accept_unsigned=_unsigned_refs_accepted(),
        )

    @classmethod
    def configured(cls) -> BlobStore:
        """:meth:`from_env` for the public API (orchestrator, workers): a setting that is
        wrong (a malformed key, an S3 store without one) is a ``PluginError``
        ``InvalidConfiguration`` naming it, caused by the :class:`BlobStoreError`."""
        try:
            return cls.from_env()
        except BlobStoreError as exc:
            raise PluginError(PluginErrorCode.InvalidConfiguration, str(exc)) from exc

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the blobs are, for messages (a path, ``s3://bucket/prefix``)."""

    @property
    def key(self) -> BlobKey:
        """The key that signs and verifies references (loaded on first use)."""
        with self._key_lock:
            if self._signing_key is None:
                self._signing_key = self._default_key()
            return self._signing_key

    def _default_key(self) -> BlobKey:
        raise BlobStoreError(
            f"the blob store {self.location} has no key to sign references with: set "
            "ORCHESTRATOR_BLOB_KEY or ORCHESTRATOR_BLOB_KEY_FILE, the same on every worker "
            "and client"
        )

    @abstractmethod
    def put(self, execution_id: str, data: bytes) -> str:
        """Store ``data`` for ``execution_id``; return its digest (``sha256:...``).
        Storing the same data again is cheap and harmless (safe to retry)."""

    @abstractmethod
    def _read(self, address: BlobAddress) -> bytes:
        """At most ``address.size + 1`` bytes of the blob.

        Raises:
            FileNotFoundError: the blob is gone.
            BlobIntegrityError: its path leaves the store.
        """

    @abstractmethod
    def executions(self) -> list[tuple[str, str, float]]:
        """(execution id, directory, last modification time) of every execution's blobs."""

    @abstractmethod
    def remove(self, directory_name: str) -> None:
        """Delete one execution's blobs (``directory_name`` as :meth:`executions` gives it)."""

    # -- references --------------------------------------------------------------------------

    def make_ref(self, execution_id: str, digest: str, size: int, preview: str) -> dict[str, Any]:
        """A signed reference to ``size`` bytes with ``digest`` stored for an execution."""
        return _signed_ref(self.key, execution_id, digest, size, preview)

    def check(self, ref: Any, *, within: str | None = None) -> BlobAddress:
        """Where the blob ``ref`` names is, if ``ref`` is a reference this engine made.

        Args:
            within: The execution resolving it: the reference must be of its tree.

        Raises:
            BlobReferenceError: naming what is wrong (never a reason to read anything).
        """
        if not is_ref(ref):
            raise BlobReferenceError(
                "not a blob reference: expected an object with a '$blob' digest"
            )
        digest, execution_id, size = ref[REF_KEY], ref.get("execution_id"), ref.get("bytes")
        match = _DIGEST.fullmatch(digest)
        if match is None:
            raise BlobReferenceError(
                f"blob reference {digest[:80]!r}: the digest is not 'sha256:' and 64 "
                "lowercase hex digits"
            )
        if not isinstance(execution_id, str) or not 0 < len(execution_id) <= _MAX_EXECUTION_ID:
            raise BlobReferenceError(f"blob reference {digest}: no execution id")
        directory = _directory_name(execution_id)
        try:
            _check_directory(directory)
        except ValueError:
            raise BlobReferenceError(
                f"blob reference {digest}: {execution_id[:80]!r} is not an execution id"
            ) from None
        if type(size) is not int or size < 0:
            raise BlobReferenceError(f"blob reference {digest}: 'bytes' is not a byte count")
        address = BlobAddress(execution_id, directory, match.group(1), size)
        self._check_signature(ref, address)
        if within is not None and _execution_tree(execution_id) != _execution_tree(within):
            raise BlobReferenceError(
                f"blob reference {digest} belongs to execution '{execution_id}', not to one "
                f"of '{_execution_tree(within)}' and its children"
            )
        return address

    def _check_signature(self, ref: dict[str, Any], address: BlobAddress) -> None:
        digest = ref[REF_KEY]
        if SIGNATURE_KEY in ref:
            self.key.verify(ref[SIGNATURE_KEY], address.execution_id, digest, address.size)
        elif self.accept_unsigned:
            log.warning(
                "resolving an unsigned blob reference (ORCHESTRATOR_BLOB_UNSIGNED_REFS=accept)",
                blob=digest,
                blob_execution_id=address.execution_id,
            )
        else:
            raise BlobReferenceError(
                f"blob reference {digest} of execution '{address.execution_id}' is not "
                "signed: not made by this engine, or made before references were signed "
                "(ORCHESTRATOR_BLOB_UNSIGNED_REFS=accept reads those)"
            )

    def get(self, ref: Any) -> Any:
        """The value a reference the engine made stands for.

        Raises:
            BlobReferenceError: ``ref`` is not such a reference.
            BlobIntegrityError: the store does not hold the blob as it was made.
            FileNotFoundError: the blob is gone (collected, or another machine's store).
        """
        return self.load(self.check(ref))

    def load(self, address: BlobAddress) -> Any:
        """The value of a checked reference's blob, checked against its size and digest."""
        data = self._read(address)
        if len(data) != address.size or hashlib.sha256(data).hexdigest() != address.digest:
            raise BlobIntegrityError(
                f"{address} in {self.location} does not match its digest: the store was changed"
            )
        return json.loads(data)

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
        signing_key = self.key  # a store without a key fails here, before any upload
        result = dict(output)
        for key in sorted(sizes, key=sizes.__getitem__, reverse=True):
            if total <= threshold or sizes[key] < 512:
                break
            encoded = json.dumps(output[key], separators=(",", ":")).encode()
            digest = self.put(execution_id, encoded)
            preview = encoded[:_PREVIEW].decode(errors="replace")
            ref = _signed_ref(signing_key, execution_id, digest, len(encoded), preview)
            result[key] = ref
            total += len(json.dumps(ref)) - sizes[key]
        if total > limit:
            raise ValueError(
                f"output is {total:,} bytes of JSON even with its large values in the blob "
                f"store (limit {limit:,}): too many keys"
            )
        return result

    def resolve(self, value: Any, *, within: str, depth: int = 0) -> Any:
        """``value`` with every reference the engine made for the execution tree of
        ``within`` (a few levels deep) replaced by its content. Anything else shaped like a
        reference stays as it is: plain data.

        Raises:
            BlobIntegrityError, FileNotFoundError: as :meth:`get`.
        """
        if is_ref(value):
            try:
                address = self.check(value, within=within)
            except BlobReferenceError as exc:
                log.warning(
                    "a value shaped like a blob reference is passed on as data", reason=str(exc)
                )
                return value
            return self.load(address)
        if depth >= _MAX_DEPTH:
            return value
        if isinstance(value, dict):
            return {
                key: self.resolve(item, within=within, depth=depth + 1)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self.resolve(item, within=within, depth=depth + 1) for item in value]
        return value


def _signed_ref(
    key: BlobKey, execution_id: str, digest: str, size: int, preview: str
) -> dict[str, Any]:
    return {
        REF_KEY: digest,
        "bytes": size,
        "execution_id": execution_id,
        "preview": preview,
        SIGNATURE_KEY: key.sign(execution_id, digest, size),
    }


def _write_atomic(directory: Path, name: str, data: bytes) -> None:
    """``directory/name`` holds ``data`` whole or not at all; a symlink there is replaced,
    never followed."""
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, directory / name)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class LocalBlobStore(BlobStore):
    """A directory of blobs, one subdirectory per execution; its key in ``.blob-key``."""

    def __init__(
        self, root: Path, *, key: BlobKey | None = None, accept_unsigned: bool = False
    ) -> None:
        super().__init__(key=key, accept_unsigned=accept_unsigned)
        self.root = root

    @property
    def location(self) -> str:
        return str(self.root)

    def _default_key(self) -> BlobKey:
        return BlobKey.load_or_create(self.root / KEY_FILE_NAME)

    def _inside(self, path: Path, name: str) -> Path:
        """``path`` resolved (symlinks followed), if that is under the store's root."""
        resolved = path.resolve()
        root = self.root.resolve()
        if resolved == root or not resolved.is_relative_to(root):
            raise BlobIntegrityError(
                f"{name} resolves to a path outside the blob store {self.location} "
                "(a symlink in the store?)"
            )
        return resolved

    def put(self, execution_id: str, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        name = _directory_name(execution_id)
        _check_directory(name)
        directory = self.root / name
        directory.mkdir(parents=True, exist_ok=True)
        self._inside(directory, f"the directory {name}/")  # never write elsewhere
        if (directory / f"{digest}.json").exists():
            return f"sha256:{digest}"
        _write_atomic(directory, _OWNER, execution_id.encode())
        _write_atomic(directory, f"{digest}.json", data)
        return f"sha256:{digest}"

    def _read(self, address: BlobAddress) -> bytes:
        path = self._inside(self.root / address.directory / address.name, str(address))
        # Not following a symlink swapped in since, nor blocking on a FIFO: a regular file.
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            handle = os.open(path, flags)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise BlobIntegrityError(
                f"{address} in {self.location} cannot be read: {exc}"
            ) from None
        with os.fdopen(handle, "rb") as blob:
            if not stat.S_ISREG(os.fstat(blob.fileno()).st_mode):
                raise BlobIntegrityError(f"{address} in {self.location} is not a file")
            return blob.read(address.size + 1)

    def executions(self) -> list[tuple[str, str, float]]:
        if not self.root.exists():
            return []
        found = []
        for entry in self.root.iterdir():
            owner = entry / _OWNER
            if entry.is_dir() and not entry.name.startswith(".") and owner.exists():
                found.append((owner.read_text(), entry.name, entry.stat().st_mtime))
        return sorted(found)

    def remove(self, directory_name: str) -> None:
        _check_directory(directory_name)
        # rmtree refuses a symlinked directory (ignored here): it never deletes elsewhere.
        shutil.rmtree(self.root / directory_name, ignore_errors=True)


_MISSING = ("404", "NoSuchKey", "NotFound")
_NO_BUCKET = ("NoSuchBucket",)
_BAD_CREDENTIALS = (
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "InvalidClientTokenId",
    "AuthorizationHeaderMalformed",
)
_DENIED = ("403", "AccessDenied", "Forbidden", "AllAccessDisabled")


class S3BlobStore(BlobStore):
    """Blobs in an S3 bucket (AWS or any S3-compatible store), one key prefix per execution.

    The client is boto3's (synchronous, thread-safe once created). boto3 is imported here,
    not at module import: it is an optional dependency.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        addressing_style: str | None = None,
        key: BlobKey | None = None,
        accept_unsigned: bool = False,
    ) -> None:
        super().__init__(key=key, accept_unsigned=accept_unsigned)
        if not bucket or "/" in bucket:
            raise ValueError(f"{bucket!r} is not an S3 bucket name")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._base = f"{self.prefix}/" if self.prefix else ""
        try:
            boto3 = importlib.import_module("boto3")
            config_module = importlib.import_module("botocore.config")
            self._errors = importlib.import_module("botocore.exceptions")
        except ImportError:
            raise BlobStoreError(
                f"the blob store {self.location} needs boto3, which is not installed: "
                "pip install 'plugin-orchestrator[s3]' (or boto3)"
            ) from None
        style = addressing_style or ("path" if endpoint_url else "auto")
        config = config_module.Config(
            s3={"addressing_style": style},
            retries={"mode": "standard", "max_attempts": 5},
            connect_timeout=10,
            read_timeout=120,
        )
        try:
            # boto3 ships no type information: its client is Any here.
            self._client: Any = boto3.session.Session().client(
                "s3", endpoint_url=endpoint_url or None, region_name=region or None, config=config
            )
        except Exception as exc:  # a malformed endpoint URL or region, say
            raise BlobStoreError(
                f"the blob store {self.location} (endpoint {endpoint_url or 'AWS'}) cannot be "
                f"set up: {exc}"
            ) from exc
        self.endpoint: str = str(self._client.meta.endpoint_url)

    @classmethod
    def from_url(cls, url: str) -> S3BlobStore:
        """``s3://bucket/optional/prefix``, with the endpoint, region and key from the
        environment (see the module documentation).

        Raises:
            BlobStoreError: no key is set (``ORCHESTRATOR_BLOB_KEY``): every machine using
                the bucket must sign with the same one.
        """
        key = BlobKey.from_env()
        if key is None:
            raise BlobStoreError(
                f"the blob store {url} needs ORCHESTRATOR_BLOB_KEY (or "
                "ORCHESTRATOR_BLOB_KEY_FILE): the key that signs blob references, the same on "
                "every worker and client (make one with: openssl rand -base64 32)"
            )
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        env = os.environ.get
        endpoint = (
            env("ORCHESTRATOR_S3_ENDPOINT_URL")
            or env("AWS_ENDPOINT_URL_S3")
            or env("AWS_ENDPOINT_URL")
            or ""
        ).strip()
        region = (env("AWS_REGION") or env("AWS_DEFAULT_REGION") or "").strip()
        style = env("ORCHESTRATOR_S3_ADDRESSING_STYLE", "").strip()
        return cls(
            bucket,
            prefix,
            endpoint_url=endpoint or None,
            region=region or None,
            addressing_style=style or None,
            key=key,
            accept_unsigned=_unsigned_refs_accepted(),
        )

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    # -- keys and errors -----------------------------------------------------------------

    def _key(self, directory: str, name: str) -> str:
        return f"{self._base}{directory}/{name}"

    def _code(self, exc: BaseException) -> str:
        if isinstance(exc, self._errors.ClientError):
            return str(exc.response.get("Error", {}).get("Code", ""))
        return ""

    def _failure(self, exc: Exception, doing: str) -> BlobStoreError:
        """``exc`` (from boto3) as an error that names the bucket and the endpoint."""
        code = self._code(exc)
        where = f"bucket '{self.bucket}' at {self.endpoint}"
        if code in _NO_BUCKET:
            reason = f"bucket '{self.bucket}' does not exist at {self.endpoint}"
        elif code in _BAD_CREDENTIALS:
            reason = (
                f"{where} rejected the credentials ({code}): check AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY"
            )
        elif code in _DENIED:
            reason = f"{where} denied access ({code}): check the credentials and the policy"
        elif isinstance(exc, self._errors.NoCredentialsError):
            reason = (
                f"no credentials for {where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(or a profile or role)"
            )
        elif isinstance(exc, self._errors.ConnectionError):  # unreachable, timed out
            reason = f"cannot reach {where}: {exc}"
        else:
            reason = f"{where}: {exc}"
        return BlobStoreError(f"blob store {self.location}: {doing} failed: {reason}")

    def _boto_errors(self) -> tuple[type[Exception], ...]:
        return (self._errors.BotoCoreError, self._errors.ClientError)

    def _exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=key)
        except self._boto_errors() as exc:
            if self._code(exc) in _MISSING:
                # Also what a missing bucket answers to HEAD; the PUT that follows says so.
                return False
            raise self._failure(exc, f"checking {key}") from exc
        return True

    def _upload(self, key: str, data: bytes, content_type: str) -> None:
        try:
            self._client.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType=content_type
            )
        except self._boto_errors() as exc:
            raise self._failure(exc, f"writing {key}") from exc

    def _objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        """Every object whose key starts with ``prefix``."""
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                yield from page.get("Contents", [])
        except self._boto_errors() as exc:
            raise self._failure(exc, f"listing {prefix or '/'}") from exc

    # -- the store -----------------------------------------------------------------------

    def put(self, execution_id: str, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        directory = _directory_name(execution_id)
        _check_directory(directory)
        key = self._key(directory, f"{digest}.json")
        if not self._exists(key):
            # The owner first: a blob is never left where executions() (and so gc) can't see
            # it, even if this attempt fails between the two writes and a retry skips it.
            self._upload(self._key(directory, _OWNER), execution_id.encode(), "text/plain")
            self._upload(key, data, "application/json")
        return f"sha256:{digest}"

    def _read(self, address: BlobAddress) -> bytes:
        # Built only from checked parts: a hex digest and a sanitized directory name.
        key = self._key(address.directory, address.name)
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
            try:
                data: bytes = body.read(address.size + 1)
            finally:
                body.close()
        except self._boto_errors() as exc:
            if self._code(exc) in _MISSING:
                raise FileNotFoundError(f"no blob {key} in {self.location}") from None
            raise self._failure(exc, f"reading {key}") from exc
        return data

    def executions(self) -> list[tuple[str, str, float]]:
        directories = []
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._base, Delimiter="/"):
                for common in page.get("CommonPrefixes", []):
                    name = str(common["Prefix"])[len(self._base) :].rstrip("/")
                    if name:
                        directories.append(name)
        except self._boto_errors() as exc:
            raise self._failure(exc, f"listing {self._base or '/'}") from exc
        found = []
        for name in directories:
            owner_key = self._key(name, _OWNER)
            newest = 0.0
            has_owner = False
            for item in self._objects(self._key(name, "")):
                newest = max(newest, float(item["LastModified"].timestamp()))
                has_owner = has_owner or item["Key"] == owner_key
            if not has_owner:
                continue
            try:
                owner = self._client.get_object(Bucket=self.bucket, Key=owner_key)["Body"].read()
            except self._boto_errors() as exc:
                if self._code(exc) in _MISSING:  # removed meanwhile
                    continue
                raise self._failure(exc, f"reading {owner_key}") from exc
            found.append((bytes(owner).decode(), name, newest))
        return sorted(found)

    def remove(self, directory_name: str) -> None:
        _check_directory(directory_name)
        keys = [str(item["Key"]) for item in self._objects(self._key(directory_name, ""))]
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            try:
                answer = self._client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
                )
            except self._boto_errors() as exc:
                raise self._failure(exc, f"deleting {directory_name}/") from exc
            errors = answer.get("Errors") or []
            if errors:
                first = errors[0]
                raise BlobStoreError(
                    f"blob store {self.location}: deleting {directory_name}/ failed for "
                    f"{len(errors)} objects of bucket '{self.bucket}' at {self.endpoint}, e.g. "
                    f"{first.get('Key')}: {first.get('Code')} {first.get('Message', '')}".rstrip()
                )
