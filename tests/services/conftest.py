"""Fixtures for tests against real services on their standard loopback ports.

Redis (6379), NATS with JetStream (4222), Mosquitto (1883) and PostgreSQL (5432) run on the
development machines and in CI. On a machine without one, its tests are skipped; in CI
(``CI=true``) a missing service fails them instead: it must never pass silently there.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable

import pytest


def in_ci() -> bool:
    """True when running in CI, where every service must be available."""
    return os.environ.get("CI", "").strip().lower() == "true"


@pytest.fixture(name="require_service")
def fixture_require_service() -> Callable[[str, str, int], None]:
    """``require_service(name, host, port)``: skip the test (fail it in CI) unless a TCP
    connection to ``host:port`` succeeds."""

    def require(name: str, host: str, port: int) -> None:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                pass
        except OSError as exc:
            reason = f"{name} is not reachable at {host}:{port} ({exc})"
            if in_ci():
                pytest.fail(f"{reason}; in CI (CI=true) every service must be running")
            pytest.skip(reason)

    return require


@pytest.fixture(name="unique_name")
def fixture_unique_name() -> Callable[[str], str]:
    """Makes a name unique to the test (streams, topics, tables, client ids)."""
    suffix = uuid.uuid4().hex[:10]
    return lambda prefix: f"{prefix}_{suffix}"
