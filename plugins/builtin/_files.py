"""Where the built-in plugins may read, write, move and watch files: the worker operator's
file-access policy.

Definitions come from API users and paths also arrive as data (an event's ``path``, an
upstream node's output); the worker runs with its operator's rights. So every path a built-in
plugin touches must resolve (``..`` and symbolic links resolved, relative paths taken from the
worker's working directory) to a location inside one of the *file roots*:

* ``ORCHESTRATOR_FILE_ROOTS`` (read by the worker): absolute directories separated by
  ``os.pathsep`` (``:`` on POSIX, like ``PATH``; ``~`` is expanded). Setting it replaces the
  working-directory default; ``/`` allows every path except the engine's own files.
* unset: the worker's working directory, unless that is ``/`` or holds the user's home
  directory (a worker started from ``~`` would otherwise open ``~/.ssh`` to definitions).
* always: the data directory's output area, ``<data dir>/outputs`` (``data_sink`` writes
  there when it has no ``path``).

The engine's own files are refused even inside a root: the data directory (the embedded
server's database, log and records, the default blob store) except its ``outputs``; a local
blob store (``ORCHESTRATOR_BLOB_STORE``) with its ``.blob-key``; files the environment names
(``ORCHESTRATOR_*_FILE`` such as the blob and encryption key files, ``TEMPORAL_TLS_CERT``,
``TEMPORAL_TLS_KEY``, ``TEMPORAL_TLS_CA``) and anything a process registers with
:func:`protect` (the studio's token file); the Python environment the worker runs in
(``sys.prefix``) and the directories of the engine's code (``engine``, ``activities``,
``plugins``), where a written file would be code the worker runs next.

Use: a plugin calls :func:`checked_path` where it is about to touch a path, then works on
the *resolved* path it returns, and reads through :func:`open_regular` (no final symbolic
link, regular files only, so a FIFO or device cannot hang or flood the worker). A refusal is
a ``PluginError(PluginExecutionFailed)``: the node fails once, naming the path, where it
resolves to and how to allow it. What stays open: a directory component created or swapped
for a link *after* the check (between check and use) by someone who can write inside a root;
keep roots writable by trusted writers only.
"""

from __future__ import annotations

import errno
import functools
import os
import stat
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from engine.base.data_dir import default_data_dir
from engine.base.errors import PluginError, PluginErrorCode

ROOTS_VARIABLE = "ORCHESTRATOR_FILE_ROOTS"
#: The data directory's output area (always a root).
OUTPUTS = "outputs"
#: Environment variables naming files the engine reads (besides every ``ORCHESTRATOR_*_FILE``).
_FILE_VARIABLES = ("TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY", "TEMPORAL_TLS_CA")
_BLOB_STORE_VARIABLE = "ORCHESTRATOR_BLOB_STORE"
_ENGINE_PACKAGES = ("engine", "activities", "plugins")

_registered: dict[str, str] = {}  # resolved path -> what it is (see protect())


class PolicyError(ValueError):
    """``ORCHESTRATOR_FILE_ROOTS`` holds an entry that is not an absolute directory path."""


@dataclass(frozen=True)
class Protected:
    """An engine file or directory plugins never touch (everything under it, except
    ``allowed``)."""

    path: str
    what: str
    allowed: str | None = None

    def covers(self, resolved: str) -> bool:
        """Whether ``resolved`` is this file or inside this directory (and not allowed)."""
        if not _within(resolved, self.path):
            return False
        return self.allowed is None or not _within(resolved, self.allowed)


@dataclass(frozen=True)
class FilePolicy:
    """The roots and the engine's own files (module docstring); all paths resolved."""

    roots: tuple[str, ...]
    protected: tuple[Protected, ...]
    note: str = ""  # why the working directory is not a default root, when it is not

    @classmethod
    def from_environment(cls) -> FilePolicy:
        """The policy the environment sets (cached per environment and working directory).

        Raises:
            PolicyError: An ``ORCHESTRATOR_FILE_ROOTS`` entry that is not absolute.
        """
        relevant = tuple(
            (name, value)
            for name, value in sorted(os.environ.items())
            if name in (ROOTS_VARIABLE, _BLOB_STORE_VARIABLE, "ORCHESTRATOR_DATA_DIR")
            or name in _FILE_VARIABLES
            or name in ("HOME", "XDG_DATA_HOME")
            or (name.startswith("ORCHESTRATOR_") and name.endswith("_FILE"))
        )
        return _policy(relevant, os.getcwd(), tuple(sorted(_registered.items())))

    def refusal(self, resolved: str) -> str | None:
        """Why ``resolved`` (an absolute, resolved path) is refused, or None if allowed."""
        for item in self.protected:
            if item.covers(resolved):
                return (
                    f"{item.what}: the engine's own files are never read or written by "
                    f"plugins, whatever {ROOTS_VARIABLE} allows"
                )
        if any(_within(resolved, root) for root in self.roots):
            return None
        return (
            f"outside the directories the worker's plugins may use ({', '.join(self.roots)})"
            f"{self.note}. The worker's operator can allow it in {ROOTS_VARIABLE} (absolute "
            f"directories separated by '{os.pathsep}', e.g. {os.path.dirname(resolved)})"
        )


def checked_path(path: str | os.PathLike[str], *, key: str) -> Path:
    """``path`` resolved (relative to the working directory, ``..`` and symbolic links
    resolved), if the policy allows it.

    Args:
        path: The path as the configuration or the data gave it.
        key: Where it came from, for the message (``"config 'path'"``, ``"input 'path'"``).

    Raises:
        PluginError: ``PluginExecutionFailed`` when refused (naming the path, where it
            resolves to and how to allow it); ``InvalidConfiguration`` for a malformed
            ``ORCHESTRATOR_FILE_ROOTS``.
    """
    text = os.fspath(path)
    if "\0" in text:
        raise _refused(key, text, None, "a path cannot hold a NUL character")
    resolved = resolve(text)
    try:
        policy = FilePolicy.from_environment()
    except PolicyError as exc:
        raise PluginError(PluginErrorCode.InvalidConfiguration, str(exc)) from None
    reason = policy.refusal(resolved)
    if reason is not None:
        raise _refused(key, text, resolved, reason)
    return Path(resolved)


def resolve(path: str) -> str:
    """``path`` absolute with ``..`` and every symbolic link of its existing part resolved."""
    return os.path.realpath(os.path.abspath(path))


def open_regular(path: Path, *, key: str) -> BinaryIO:
    """Open ``path`` (as :func:`checked_path` returned it) for reading without following a
    final symbolic link, and only if it is a regular file.

    Raises:
        PluginError: ``PluginExecutionFailed``: the path became a symbolic link since it was
            checked, or is not a regular file (a FIFO, a device, a socket, a directory).
        OSError: The file cannot be opened (``FileNotFoundError`` included).
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _refused(key, str(path), None, "it became a symbolic link") from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _refused(key, str(path), None, f"it is not a regular file ({_kind(mode)})")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def outputs_directory() -> Path:
    """The data directory's output area (resolved): ``<data dir>/outputs``."""
    return Path(resolve(str(_data_directory() / OUTPUTS)))


def protect(path: str | os.PathLike[str], what: str) -> None:
    """Refuse ``path`` to the plugins of this process from now on (e.g. a token file given on
    the command line, which the environment does not name)."""
    _registered[resolve(os.fspath(path))] = what


def _refused(key: str, given: str, resolved: str | None, reason: str) -> PluginError:
    where = f" resolves to {resolved}, which is" if resolved not in (None, given) else " is"
    return PluginError(
        PluginErrorCode.PluginExecutionFailed,
        f"{key} {given!r}{where} refused: {reason}",
        {"path": given, "resolved": resolved, "reason": reason},
    )


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _within(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip(os.sep) + os.sep)


def _data_directory() -> Path:
    return default_data_dir()


@functools.lru_cache(maxsize=16)
def _policy(
    environment: tuple[tuple[str, str], ...], cwd: str, registered: tuple[tuple[str, str], ...]
) -> FilePolicy:
    env = dict(environment)
    outputs = str(outputs_directory())
    configured = env.get(ROOTS_VARIABLE, "").strip()
    note = ""
    if configured:
        roots = [*_parse_roots(configured), outputs]
    else:
        roots, note = _default_roots(resolve(cwd), outputs)
    return FilePolicy(
        roots=tuple(dict.fromkeys(roots)),
        protected=tuple(_protected(env, outputs, registered)),
        note=note,
    )


def _parse_roots(value: str) -> list[str]:
    roots: list[str] = []
    for entry in (part.strip() for part in value.split(os.pathsep)):
        if not entry:
            continue
        expanded = os.path.expanduser(entry)
        if not os.path.isabs(expanded):
            raise PolicyError(
                f"{ROOTS_VARIABLE} has the entry {entry!r}, which is not an absolute "
                f"directory path (entries are separated by '{os.pathsep}')"
            )
        roots.append(resolve(expanded))
    return roots


def _default_roots(cwd: str, outputs: str) -> tuple[list[str], str]:
    home = resolve(os.path.expanduser("~"))
    if cwd == os.sep or _within(home, cwd):
        held = "is the file system's root" if cwd == os.sep else "holds the home directory"
        note = f" (the working directory {cwd} is not one: it {held})"
        return [outputs], note
    return [cwd, outputs], ""


def _protected(
    env: dict[str, str], outputs: str, registered: Iterable[tuple[str, str]]
) -> Iterable[Protected]:
    data = resolve(str(_data_directory()))
    yield Protected(data, f"the engine's data directory {data} (only {OUTPUTS}/ is open)", outputs)
    store = env.get(_BLOB_STORE_VARIABLE, "").strip()
    if store and "://" not in store.removeprefix("file://"):
        location = resolve(os.path.expanduser(store.removeprefix("file://")))
        yield Protected(location, f"the blob store {location} (and its key)")
    for name, value in sorted(env.items()):
        is_file_variable = name in _FILE_VARIABLES or (
            name.startswith("ORCHESTRATOR_") and name.endswith("_FILE")
        )
        if is_file_variable and value.strip():
            yield Protected(resolve(os.path.expanduser(value.strip())), f"the file {name} names")
    for path, what in registered:
        yield Protected(path, what)
    prefix = resolve(sys.prefix)
    yield Protected(prefix, f"the Python environment the worker runs in ({prefix})")
    for package in _ENGINE_PACKAGES:
        module = sys.modules.get(package)
        for directory in getattr(module, "__path__", []):
            location = resolve(directory)
            yield Protected(location, f"the engine's code ({location})")
