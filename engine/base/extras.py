"""Optional extras of the package, and the message a user gets when one is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from engine.base.errors import PluginError, PluginErrorCode


def require_extra(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module``, which the ``extra`` installs.

    Raises:
        PluginError: ``InvalidConfiguration`` naming ``purpose``, the missing package and
            the install command.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.startswith("engine"):
            raise
        raise PluginError(
            PluginErrorCode.InvalidConfiguration,
            f"{purpose} needs the Python package '{exc.name}', which is not installed: "
            f"pip install 'plugin-orchestrator[{extra}]'",
        ) from None
