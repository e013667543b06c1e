"""Checking a configuration against a plugin's model: the one path every configuration
takes before a plugin sees it (:meth:`plugins.Plugin.check_config` for functions,
``source_plugin(..., passes_model=True)`` for sources).

Keys the model does not declare are ignored: they may be workflow-wide settings
(``global_configuration``) or the engine's reserved node keys. A refusal is one
``PluginError(InvalidConfiguration)`` naming the plugin and every bad field (the first five).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from engine.base.errors import PluginError, PluginErrorCode

ModelT = TypeVar("ModelT", bound=BaseModel)


def validated(model: type[ModelT], config: dict[str, Any], what: str) -> ModelT:
    """``config`` validated into ``model``; ``what`` names the plugin in a refusal (for
    example ``"plugin 'greet'"``).

    Raises:
        PluginError: ``InvalidConfiguration``: ``configuration of {what}: {field}: {problem}``.
    """
    declared = {key: value for key, value in config.items() if key in model.model_fields}
    try:
        return model.model_validate(declared)
    except ValidationError as exc:
        raise PluginError(
            PluginErrorCode.InvalidConfiguration, f"configuration of {what}: {describe(exc)}"
        ) from None


def describe(exc: ValidationError) -> str:
    """The first five problems of ``exc``, each as ``field: problem``."""
    parts = []
    for err in exc.errors()[:5]:
        location = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{location}: {err['msg']}")
    return "; ".join(parts)
