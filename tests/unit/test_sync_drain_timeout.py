"""The sync facade's drain bound from ``ORCHESTRATOR_DRAIN_TIMEOUT``."""

from __future__ import annotations

import pytest

from engine.base.errors import PluginError, PluginErrorCode
from engine.sync import DEFAULT_DRAIN_TIMEOUT, ENV_DRAIN_TIMEOUT, default_drain_timeout


def test_unset_or_blank_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_DRAIN_TIMEOUT, raising=False)
    assert default_drain_timeout() == DEFAULT_DRAIN_TIMEOUT == 30.0
    monkeypatch.setenv(ENV_DRAIN_TIMEOUT, "  ")
    assert default_drain_timeout() == DEFAULT_DRAIN_TIMEOUT


@pytest.mark.parametrize(("value", "seconds"), [("0", 0.0), ("2.5", 2.5), (" 120 ", 120.0)])
def test_seconds(monkeypatch: pytest.MonkeyPatch, value: str, seconds: float) -> None:
    monkeypatch.setenv(ENV_DRAIN_TIMEOUT, value)
    assert default_drain_timeout() == seconds


@pytest.mark.parametrize("value", ["-1", "soon", "nan", "inf", "1e999"])
def test_anything_else_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(ENV_DRAIN_TIMEOUT, value)
    with pytest.raises(PluginError) as info:
        default_drain_timeout()
    assert info.value.code is PluginErrorCode.InvalidConfiguration
    assert info.value.message == (
        f"ORCHESTRATOR_DRAIN_TIMEOUT must be a number of seconds (0 or more), got {value!r}"
    )


def test_the_argument_is_checked_before_anything_starts() -> None:
    from engine.sync import AdvancedPluginOrchestrator

    with pytest.raises(PluginError) as info:
        AdvancedPluginOrchestrator("127.0.0.1:1", drain_timeout=-5)
    assert info.value.code is PluginErrorCode.InvalidConfiguration
    assert info.value.message == "drain_timeout must be a number of seconds (0 or more), got -5"
