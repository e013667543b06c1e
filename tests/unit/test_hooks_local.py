"""Webhook pieces that need no server: signatures, the rate limiter, the hook file."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest

from engine import PluginError, PluginErrorCode
from engine.client.hook_signing import SignatureError, sign, signature, verify
from engine.client.hook_store import HookInfo, HookStore
from engine.client.hooks import delivery_suffix, key_problem
from engine.studio.rate_limit import RateLimiter

SECRET = "whsec_test-secret"


def test_a_signature_verifies_within_the_window_only() -> None:
    body = b'{"a": 1}'
    header = sign(SECRET, body, 1_000_000)
    assert header == f"t=1000000,v1={signature(SECRET, 1_000_000, body)}"
    assert verify(header, body, [SECRET], tolerance=300, now=1_000_299) == 1_000_000
    for now in (1_000_301, 999_699):
        with pytest.raises(SignatureError, match="away from the receiver's clock"):
            verify(header, body, [SECRET], tolerance=300, now=now)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "no X-Orchestrator-Signature"),
        ("", "no X-Orchestrator-Signature"),
        ("v1=abc", "must read"),
        ("t=abc,v1=abc", "must read"),
        ("t=1000000", "must read"),
        ("t=1000000,v0=" + "0" * 64, "must read"),
        ("t=1000000,v1=" + "0" * 64, "does not match"),
        ("t=1000000,v1=\u00e9", "does not match"),
        ("t=" + "9" * 2000, "too long"),
    ],
)
def test_bad_headers_are_refused(header: str | None, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        verify(header, b"{}", [SECRET], tolerance=300, now=1_000_000)


def test_any_current_secret_and_any_given_signature_match() -> None:
    body = b"{}"
    good = signature("whsec_new", 1_000_000, body)
    header = f"t=1000000,v1={'0' * 64},v1={good}"
    assert verify(header, body, ["whsec_old", "whsec_new"], tolerance=5, now=1_000_000)
    with pytest.raises(SignatureError):
        verify(header, body, ["whsec_old"], tolerance=5, now=1_000_000)


def test_delivery_keys() -> None:
    assert delivery_suffix("h", "k") == delivery_suffix("h", "k")
    assert delivery_suffix("h", "k") != delivery_suffix("h2", "k")
    assert len(delivery_suffix("h", "k")) == len("hook-") + 32
    assert key_problem("abc-123") is None
    assert key_problem("") is not None
    assert key_problem("x" * 201) is not None
    assert key_problem("tab\there") is not None


def test_rate_limiter_refills_over_time() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert [limiter.take("h", 2) for _ in range(2)] == [0.0, 0.0]
    assert limiter.take("h", 2) == pytest.approx(30.0)
    assert limiter.take("other", 2) == 0.0  # per hook
    now[0] = 30.0
    assert limiter.take("h", 2) == 0.0
    assert limiter.take("h", 2) > 0


def _info(hook_id: str, queue: str = "q") -> HookInfo:
    return HookInfo(
        hook_id=hook_id,
        workflow_id="wf",
        namespace="default",
        task_queue=queue,
        created_at=time.time(),
    )


def test_store_file_is_private_atomic_and_shared(tmp_path: Path) -> None:
    path = tmp_path / "data" / "hooks.json"
    store, other = HookStore(path), HookStore(path)
    secret = store.create(_info("a"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert other.get("a", "default", "q").secret == secret  # type: ignore[union-attr]
    assert other.get("a", "default", "another queue") is None
    assert [h.hook_id for h in other.list("default", "q")] == ["a"]
    assert "secret" not in other.list("default", "q")[0].model_dump()
    with pytest.raises(PluginError) as info:
        other.create(_info("a", "another queue"))
    assert info.value.code is PluginErrorCode.WorkflowAlreadyExists
    rotated = other.rotate("a", "default", "q", grace_seconds=60)
    record = store.get("a", "default", "q")
    assert record is not None
    assert record.secrets_at(time.time()) == [rotated, secret]
    assert record.secrets_at(time.time() + 61) == [rotated]
    store.delete("a", "default", "q")
    assert other.get("a", "default", "q") is None
    with pytest.raises(PluginError):
        store.delete("a", "default", "q")
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "hooks.json"

    def create(start: int) -> None:
        store = HookStore(path)
        for index in range(start, start + 10):
            store.create(_info(f"h{index}"))

    threads = [threading.Thread(target=create, args=(n * 10,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(HookStore(path).list("default", "q")) == 40


def test_a_corrupt_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "hooks.json"
    path.write_text("{not json")
    os.chmod(path, 0o600)
    with pytest.raises(PluginError) as info:
        HookStore(path).get("a", "default", "q")
    assert info.value.code is PluginErrorCode.InvalidConfiguration
