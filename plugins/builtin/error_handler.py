"""``error_handler``: record a failed or invalid item and optionally quarantine its file.

Writes a JSON report ``{"execution_id", "workflow_id", "node_id", "inputs", "reason"}`` to
``<report_dir>/<name>-<hash>.error.json``, where ``<name>`` is the source file's stem (or the
node id when there is no source file) and ``<hash>`` the first 12 hex digits of the SHA-256 of
the inputs as canonical JSON. The report holds no timestamps or attempt numbers, so a retry
rewrites the same bytes to the same file. It is written atomically (temporary file + rename).

Config:
    report_dir (str, required): Directory for reports (created if missing).
    quarantine_dir (str, optional): If set and a source file is found, the file is moved into
        this directory (created if missing), keeping its name; an existing file of that name
        there is replaced. If the source is gone but the quarantined copy exists (a retry
        after the move), that counts as done. If neither exists, nothing is moved and
        ``quarantined_path`` is null.
    reason (str, optional): Why the item failed. Default: the ``"errors"`` list of the inputs
        (``inputs["errors"]``, else that of the first input value that is an object holding
        one, e.g. a ``file_validator`` output) joined with ``"; "``, else ``"unspecified"``.
    path (str, optional): The source file. Without it the path is ``inputs["path"]``, else
        ``inputs["file_path"]``, else the ``"path"`` of the first input value that is an object
        holding one. No path is not an error here: there is just nothing to quarantine.

Inputs:
    Anything JSON; recorded verbatim in the report and used to find the path and errors.

Output:
    ``handled`` (always true), ``report_path`` (str), ``quarantined_path`` (str or null),
    ``reason`` (str).

Errors:
    Bad configuration is ``InvalidConfiguration`` naming the key; I/O errors (``OSError``)
    propagate and are retried.

Files: ``report_dir``, ``quarantine_dir`` and (when it is moved) the source file must resolve
inside the worker's file roots and not be one of the engine's own files
(:mod:`plugins.builtin._files`, ``ORCHESTRATOR_FILE_ROOTS``), else the node fails with
``PluginExecutionFailed`` naming the path before anything is written or moved. Without
``quarantine_dir`` the source path is only named in the report, never opened.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pydantic import Field

from engine.base.errors import PluginError
from plugins._context import PluginContext
from plugins._plugin import PluginBase
from plugins.builtin._common import (
    atomic_write,
    canonical_json,
    data_error,
    find_path,
    fsync_directory,
    safe_file_stem,
    sha256_hex,
)
from plugins.builtin._files import checked_path
from plugins.builtin._models import NonEmptyStr, PluginConfig


class ErrorHandlerConfig(PluginConfig):
    """Configuration of ``error_handler``."""

    report_dir: NonEmptyStr = Field(description="Directory for error reports (created if missing).")
    quarantine_dir: NonEmptyStr | None = Field(
        None, description="Move the source file (if any) into this directory."
    )
    reason: NonEmptyStr | None = Field(
        None, description="Why the item failed; default: the inputs' 'errors' list joined."
    )
    path: NonEmptyStr | None = Field(
        None,
        description="The source file; default: input 'path', 'file_path', or the 'path' of "
        "an upstream output.",
    )


class ErrorHandler(PluginBase):
    """Write an error report for the inputs and move their source file into quarantine."""

    plugin_id = "error_handler"
    Config = ErrorHandlerConfig

    def run(
        self, inputs: dict[str, Any], config: ErrorHandlerConfig, ctx: PluginContext
    ) -> dict[str, Any]:
        """Report the failure and quarantine its file.

        Args:
            inputs: The failed item (e.g. a ``file_validator`` output keyed by its node id).
            config: See the module documentation.
            ctx: The call's context.

        Returns:
            ``{"handled": true, "report_path": str, "quarantined_path": str | null,
            "reason": str}``.

        Raises:
            PluginError: ``InvalidConfiguration`` naming the bad key; ``PluginExecutionFailed``
                when the file policy refuses a path (nothing is written or moved then).
            OSError: The report cannot be written or the file cannot be moved.
        """
        report_dir, quarantine = config.report_dir, config.quarantine_dir
        reason = _reason(inputs, config.reason)
        found = _source_path(inputs, config.path)
        source = None if found is None else Path(found[0])

        try:
            inputs_json = canonical_json(inputs)
        except (TypeError, ValueError) as exc:
            raise data_error(f"the inputs are not JSON: {exc}") from None
        name = safe_file_stem(source.stem if source is not None else ctx.node_id)
        report_name = f"{name}-{sha256_hex(inputs_json.encode())[:12]}.error.json"
        report_path = checked_path(Path(report_dir) / report_name, key="config 'report_dir'")
        move: tuple[Path, Path] | None = None
        if quarantine is not None and found is not None:
            # Both ends are checked before anything is written: a refusal leaves no report.
            moved = checked_path(found[0], key=found[1])
            into = checked_path(Path(quarantine) / moved.name, key="config 'quarantine_dir'")
            move = moved, into
        report = {
            "execution_id": ctx.execution_id,
            "workflow_id": ctx.workflow_id,
            "node_id": ctx.node_id,
            "inputs": inputs,
            "reason": reason,
        }
        data = (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode()
        atomic_write(report_path, data)

        quarantined = None if move is None else _quarantine(*move)

        quarantined_path = str(quarantined) if quarantined is not None else None
        ctx.logger.info(
            "error_handler.handled",
            report_path=str(report_path),
            quarantined_path=quarantined_path,
            reason=reason,
        )
        return {
            "handled": True,
            "report_path": str(report_path),
            "quarantined_path": quarantined_path,
            "reason": reason,
        }


error_handler_plugin = ErrorHandler().as_plugin()


def _reason(inputs: dict[str, Any], configured: str | None) -> str:
    if configured is not None:
        return configured
    candidates: list[Any] = [inputs.get("errors")]
    candidates += [value.get("errors") for value in inputs.values() if isinstance(value, dict)]
    for errors in candidates:
        if isinstance(errors, list) and errors:
            return "; ".join(str(item) for item in errors)
    return "unspecified"


def _source_path(inputs: dict[str, Any], configured: str | None) -> tuple[str, str] | None:
    """The source file and where it came from, or None when there is none."""
    try:
        return find_path(inputs, configured)
    except PluginError:  # none configured and none in the inputs
        return None


def _quarantine(source: Path, target: Path) -> Path | None:
    """Move ``source`` to ``target`` (both checked); return where it is now, or None if it is
    nowhere."""
    directory = target.parent
    if not source.is_file():
        return target if target.is_file() else None
    directory.mkdir(parents=True, exist_ok=True)
    if source == target:
        return target
    try:
        os.replace(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        _move_across_devices(source, target)
    fsync_directory(directory)
    fsync_directory(source.parent)
    return target


def _move_across_devices(source: Path, target: Path) -> None:
    """Copy to a temporary file beside ``target``, rename it into place, then delete ``source``.

    A crash at any point leaves the source, the complete target, or both; never a partial
    target. A retry repeats the copy and finishes the move.
    """
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copy2(source, temp_name)
        with open(temp_name, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    source.unlink()
