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

Blobs are filed by execution, content-addressed inside it (``<execution>/<sha256>.json``, with
``<execution>/execution_id.txt`` naming the real execution id), and removed with
``orchestrator blobs gc`` once their execution has ended. ``ORCHESTRATOR_BLOB_STORE`` picks
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

Blob I/O is blocking; the callers run it in threads (``asyncio.to_thread``).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DEFAULT_THRESHOLD = 256 * 1024
REF_KEY = "$blob"
_PREVIEW = 120
_OWNER = "execution_id.txt"
_MAX_DEPTH = 4
_DELETE_BATCH = 1000  # the most keys one S3 DeleteObjects request takes


def blob_threshold() -> int:
    """Outputs larger than this many bytes of JSON are offloaded."""
    value = os.environ.get("ORCHESTRATOR_BLOB_THRESHOLD", "").strip()
    return int(value) if value.isdigit() else DEFAULT_THRESHOLD


def is_ref(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get(REF_KEY), str)


class BlobStoreError(RuntimeError):
    """The blob store cannot be used: a missing bucket, rejected credentials, an unreachable
    endpoint, a missing client library."""


def _directory_name(execution_id: str) -> str:
    """The file-system and URL safe name of an execution's directory."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", execution_id)


def _check_directory(name: str) -> None:
    # remove() must never reach outside one execution's directory (or wipe the whole store).
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ValueError(f"{name!r} is not the directory of an execution's blobs")


class BlobStore(ABC):
    """Where large outputs live: one directory (or key prefix) per execution."""

    @classmethod
    def from_env(cls) -> BlobStore:
        """The store ``ORCHESTRATOR_BLOB_STORE`` names (default: ``<data dir>/blobs``)."""
        configured = os.environ.get("ORCHESTRATOR_BLOB_STORE", "").strip()
        if configured:
            return cls.from_location(configured)
        from engine.embedded import default_data_dir  # the CLI's data directory

        return LocalBlobStore(default_data_dir() / "blobs")

    @staticmethod
    def from_location(location: str) -> BlobStore:
        """The store at ``location``: ``s3://bucket/prefix``, ``file://path`` or a path."""
        if location.startswith("s3://"):
            return S3BlobStore.from_url(location)
        return LocalBlobStore(Path(location.removeprefix("file://")).expanduser())

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the blobs are, for messages (a path, ``s3://bucket/prefix``)."""

    @abstractmethod
    def put(self, execution_id: str, data: bytes) -> str:
        """Store ``data`` for ``execution_id``; return its reference id (``sha256:...``).
        Storing the same data again is cheap and harmless (safe to retry)."""

    @abstractmethod
    def get(self, ref: dict[str, Any]) -> Any:
        """The value a reference stands for.

        Raises:
            FileNotFoundError: the blob is gone (collected, or another machine's store).
        """

    @abstractmethod
    def executions(self) -> list[tuple[str, str, float]]:
        """(execution id, directory, last modification time) of every execution's blobs."""

    @abstractmethod
    def remove(self, directory_name: str) -> None:
        """Delete one execution's blobs (``directory_name`` as :meth:`executions` gives it)."""

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


class LocalBlobStore(BlobStore):
    """A directory of blobs, one subdirectory per execution."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def location(self) -> str:
        return str(self.root)

    def _dir(self, execution_id: str) -> Path:
        return self.root / _directory_name(execution_id)

    def put(self, execution_id: str, data: bytes) -> str:
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
        digest = str(ref[REF_KEY]).removeprefix("sha256:")
        path = self._dir(str(ref.get("execution_id", ""))) / f"{digest}.json"
        return json.loads(path.read_bytes())

    def executions(self) -> list[tuple[str, str, float]]:
        if not self.root.exists():
            return []
        found = []
        for entry in self.root.iterdir():
            owner = entry / _OWNER
            if entry.is_dir() and owner.exists():
                found.append((owner.read_text(), entry.name, entry.stat().st_mtime))
        return sorted(found)

    def remove(self, directory_name: str) -> None:
        _check_directory(directory_name)
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
    ) -> None:
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
        """``s3://bucket/optional/prefix``, with the endpoint and region from the environment
        (see the module documentation)."""
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
        key = self._key(directory, f"{digest}.json")
        if not self._exists(key):
            # The owner first: a blob is never left where executions() (and so gc) can't see
            # it, even if this attempt fails between the two writes and a retry skips it.
            self._upload(self._key(directory, _OWNER), execution_id.encode(), "text/plain")
            self._upload(key, data, "application/json")
        return f"sha256:{digest}"

    def get(self, ref: dict[str, Any]) -> Any:
        digest = str(ref[REF_KEY]).removeprefix("sha256:")
        key = self._key(_directory_name(str(ref.get("execution_id", ""))), f"{digest}.json")
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
            data: bytes = body.read()
        except self._boto_errors() as exc:
            if self._code(exc) in _MISSING:
                raise FileNotFoundError(f"no blob {key} in {self.location}") from None
            raise self._failure(exc, f"reading {key}") from exc
        return json.loads(data)

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
