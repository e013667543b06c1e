"""Webhook records and their secrets, kept in one local file beside the serving process.

A hook (:class:`HookRecord`) names what a signed ``POST /hooks/<hook id>`` does: start an
execution of a definition, or send an event to a running EventDriven execution. Its secret is
needed in clear to check HMAC signatures, so it is kept where the serving process reads it and
nowhere else:

* not in Temporal: a workflow's input, memo and search attributes are readable by anyone with
  read access to the namespace (Temporal UI, ``temporal workflow show``), and the payload
  codec that could encrypt them is optional. Nothing of a hook ever enters Temporal; only the
  executions a hook starts do, with the request body as their input;
* in ``hooks.json`` under the data directory (``ORCHESTRATOR_HOOKS_FILE`` overrides the
  path): the directory is made ``0700``, the file ``0600``; every change is written to a
  temporary file in the same directory and renamed over the old one (readers never see half
  a file), under an exclusive ``flock`` on ``hooks.json.lock`` so the CLI and a running
  studio can change hooks at the same time without losing each other's changes. Readers
  reload the file when its size, inode or modification time changed, so a hook created with
  the CLI is served at once by a running ``orchestrator serve``.

The store is local: a studio or ``orchestrator serve`` on another machine does not see it
(point ``ORCHESTRATOR_DATA_DIR`` or ``ORCHESTRATOR_HOOKS_FILE`` at the same path, or manage the
hooks where they are served). Each record carries the namespace and task queue it was made for;
a process serves only the hooks of its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.base.data_dir import default_data_dir
from engine.base.errors import PluginError, PluginErrorCode

Code = PluginErrorCode

ENV_HOOKS_FILE = "ORCHESTRATOR_HOOKS_FILE"
HOOKS_FILE_NAME = "hooks.json"
SECRET_PREFIX = "whsec_"
#: Hooks one store holds at most (each request reads the whole file when it changed).
MAX_HOOKS = 1000
#: Default and largest accepted body of a delivery, in bytes.
DEFAULT_MAX_BODY = 256 * 1024
#: Default deliveries per minute of one hook (the bucket also holds this many at once).
DEFAULT_RATE_PER_MINUTE = 60
MAX_RATE_PER_MINUTE = 6000
#: How far (seconds) a signature's timestamp may be from this machine's clock, either way.
DEFAULT_TOLERANCE_SECONDS = 300
MAX_TOLERANCE_SECONDS = 3600
#: The longest grace the previous secret keeps after a rotation.
MAX_GRACE_SECONDS = 7 * 24 * 3600
_FILE_VERSION = 1


class HookInfo(BaseModel):
    """What a hook does, without its secret (what ``list_hooks`` shows)."""

    model_config = ConfigDict(extra="forbid")

    hook_id: str
    workflow_id: str
    action: Literal["start", "event"] = "start"
    execution_id: str | None = None
    event_type: str = "webhook"
    source: str | None = None
    idempotency_field: str | None = None
    max_body_bytes: int = Field(DEFAULT_MAX_BODY, ge=1)
    rate_per_minute: int = Field(DEFAULT_RATE_PER_MINUTE, ge=1, le=MAX_RATE_PER_MINUTE)
    tolerance_seconds: int = Field(DEFAULT_TOLERANCE_SECONDS, ge=1, le=MAX_TOLERANCE_SECONDS)
    namespace: str
    task_queue: str
    created_at: float
    rotated_at: float | None = None
    #: Until when (Unix time) the previous secret is still accepted after a rotation.
    previous_secret_expires_at: float | None = None


class HookRecord(HookInfo):
    """A hook as stored: its description and its secrets."""

    secret: str
    previous_secret: str | None = None

    def info(self) -> HookInfo:
        return HookInfo.model_validate(self.model_dump(exclude={"secret", "previous_secret"}))

    def secrets_at(self, now: float) -> list[str]:
        """The secrets a signature may be made with at ``now``: the current one, and the
        previous one during its grace after a rotation."""
        accepted = [self.secret]
        expires = self.previous_secret_expires_at
        if self.previous_secret and expires is not None and now < expires:
            accepted.append(self.previous_secret)
        return accepted


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = _FILE_VERSION
    hooks: dict[str, HookRecord] = {}


def new_secret() -> str:
    """A fresh secret: ``whsec_`` and 256 random bits (URL-safe base64)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def default_hooks_file() -> Path:
    """``ORCHESTRATOR_HOOKS_FILE``, else ``hooks.json`` in the data directory."""
    configured = os.environ.get(ENV_HOOKS_FILE)
    if configured:
        return Path(configured).expanduser()
    return default_data_dir() / HOOKS_FILE_NAME


class HookStore:
    """The hooks of one file (see the module docstring). Thread-safe; every method is
    blocking file I/O of a small file (callers on an event loop may run it in a thread)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_hooks_file()
        self._lock = threading.Lock()
        self._cache: tuple[tuple[int, int, int], _File] | None = None

    # -- reading -------------------------------------------------------------------------

    def get(self, hook_id: str, namespace: str, task_queue: str) -> HookRecord | None:
        """The hook ``hook_id`` of this namespace and task queue, or None."""
        record = self._read().hooks.get(hook_id)
        if record is None or record.namespace != namespace or record.task_queue != task_queue:
            return None
        return record

    def list(self, namespace: str, task_queue: str) -> list[HookInfo]:
        """The hooks of this namespace and task queue, by id, without secrets."""
        hooks = self._read().hooks
        return [
            hooks[hook_id].info()
            for hook_id in sorted(hooks)
            if hooks[hook_id].namespace == namespace and hooks[hook_id].task_queue == task_queue
        ]

    def _read(self) -> _File:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return _File()
        except OSError as exc:
            raise self._unreadable(exc) from None
        key = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if self._cache is not None and self._cache[0] == key:
                return self._cache[1]
        loaded = self._load()
        with self._lock:
            self._cache = (key, loaded)
        return loaded

    def _load(self) -> _File:
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return _File()
        except OSError as exc:
            raise self._unreadable(exc) from None
        try:
            return _File.model_validate_json(text)
        except ValidationError as exc:
            raise PluginError(
                Code.InvalidConfiguration,
                f"the hooks file {self.path} is not valid: {exc.errors()[0]['msg']}",
            ) from None

    def _unreadable(self, exc: OSError) -> PluginError:
        return PluginError(
            Code.InvalidConfiguration,
            f"cannot read the hooks file {self.path}: {exc.strerror or exc}",
        )

    # -- changing ------------------------------------------------------------------------

    def create(self, info: HookInfo) -> str:
        """Store a new hook; return its secret (the only time it is shown).

        Raises:
            PluginError: ``WorkflowAlreadyExists`` when the hook id is taken (by any
                namespace or task queue); ``InvalidState`` past ``MAX_HOOKS``.
        """
        secret = new_secret()
        with self._changing() as data:
            if info.hook_id in data.hooks:
                raise PluginError(
                    Code.WorkflowAlreadyExists, f"hook '{info.hook_id}' already exists"
                )
            if len(data.hooks) >= MAX_HOOKS:
                raise PluginError(Code.InvalidState, f"{self.path} already holds {MAX_HOOKS} hooks")
            data.hooks[info.hook_id] = HookRecord(**info.model_dump(), secret=secret)
        return secret

    def delete(self, hook_id: str, namespace: str, task_queue: str) -> None:
        """Remove a hook; later deliveries to it get 404.

        Raises:
            PluginError: ``WorkflowNotFound`` naming the hook when this namespace and task
                queue have none of that id (the engine has no code of its own for hooks).
        """
        with self._changing() as data:
            self._mine(data, hook_id, namespace, task_queue)
            del data.hooks[hook_id]

    def rotate(self, hook_id: str, namespace: str, task_queue: str, grace_seconds: float) -> str:
        """Give the hook a new secret and return it; the old one is still accepted for
        ``grace_seconds`` (0: refused at once), so senders can switch without a gap.

        Raises:
            PluginError: ``WorkflowNotFound`` naming the hook; ``InvalidInput`` for a
                grace out of 0 to 7 days.
        """
        if not 0 <= grace_seconds <= MAX_GRACE_SECONDS:
            raise PluginError(
                Code.InvalidInput,
                f"grace_seconds must be between 0 and {MAX_GRACE_SECONDS}, not {grace_seconds}",
            )
        secret = new_secret()
        now = time.time()
        with self._changing() as data:
            record = self._mine(data, hook_id, namespace, task_queue)
            data.hooks[hook_id] = record.model_copy(
                update={
                    "secret": secret,
                    "previous_secret": record.secret if grace_seconds > 0 else None,
                    "previous_secret_expires_at": now + grace_seconds if grace_seconds else None,
                    "rotated_at": now,
                }
            )
        return secret

    @staticmethod
    def _mine(data: _File, hook_id: str, namespace: str, task_queue: str) -> HookRecord:
        record = data.hooks.get(hook_id)
        if record is None or record.namespace != namespace or record.task_queue != task_queue:
            raise PluginError(Code.WorkflowNotFound, f"no hook {hook_id[:100]!r}")
        return record

    @contextlib.contextmanager
    def _changing(self) -> Iterator[_File]:
        """The file's content to change in place, under the lock; written back atomically
        (0600) when the block ends without an exception."""
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            lock_fd = os.open(directory / f"{self.path.name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise PluginError(
                Code.InvalidConfiguration,
                f"cannot write the hooks file {self.path}: {exc.strerror or exc}",
            ) from None
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            data = self._load()
            yield data
            self._write(data)
        finally:
            os.close(lock_fd)  # releases the lock

    def _write(self, data: _File) -> None:
        text = json.dumps(data.model_dump(mode="json"), indent=1, sort_keys=True) + "\n"
        handle, temporary = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                os.fchmod(out.fileno(), 0o600)
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        with self._lock:
            self._cache = None
