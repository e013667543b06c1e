"""TLS, mTLS and API keys for real, through the project's own connection settings.

A TLS-terminating loopback proxy (tests/helpers/tls.py) with a test CA stands in front of the
session's plain dev server and requires a client certificate signed by that CA. Clients are
configured only through ``TEMPORAL_TLS_*`` and ``TEMPORAL_API_KEY``, as a deployment would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from engine import AdvancedPluginOrchestrator, PluginError, PluginErrorCode, WorkflowExecutionStatus
from engine.hosting.connection import connect
from engine.hosting.devserver import DevServer
from engine.hosting.worker import create_worker
from plugins import PluginRegistry
from tests.helpers.builders import chain
from tests.helpers.tls import Issued, TestCA, TlsProxy

pytestmark = pytest.mark.integration

SERVER_NAME = "temporal.test"
VARIABLES = (
    "TEMPORAL_TLS",
    "TEMPORAL_TLS_CA",
    "TEMPORAL_TLS_CERT",
    "TEMPORAL_TLS_KEY",
    "TEMPORAL_TLS_SERVER_NAME",
    "TEMPORAL_API_KEY",
)


@dataclass
class Pki:
    ca: TestCA
    other_ca: TestCA
    client: Issued
    stranger: Issued  # a client certificate of another CA
    proxy: TlsProxy


@pytest_asyncio.fixture(name="pki", scope="module", loop_scope="session")
async def fixture_pki(
    dev_server: DevServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Pki]:
    directory = tmp_path_factory.mktemp("pki")
    ca, other_ca = TestCA(directory, "good"), TestCA(directory, "other")
    proxy = TlsProxy(dev_server.address, ca.issue_server(SERVER_NAME), client_ca=ca.cert)
    await proxy.start()
    try:
        yield Pki(ca, other_ca, ca.issue_client("worker"), other_ca.issue_client("x"), proxy)
    finally:
        await proxy.close()


@pytest.fixture(name="env")
def fixture_env(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Sets the TLS variables of a test (all others cleared)."""
    for variable in VARIABLES:
        monkeypatch.delenv(variable, raising=False)

    def configure(**values: str | Path) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"TEMPORAL_{name.upper()}", str(value))

    return configure


def mtls(pki: Pki, **overrides: str | Path) -> dict[str, str | Path]:
    values: dict[str, str | Path] = {
        "tls_ca": pki.ca.cert,
        "tls_cert": pki.client.cert,
        "tls_key": pki.client.key,
        "tls_server_name": SERVER_NAME,
    }
    values.update(overrides)
    return {name: value for name, value in values.items() if value != ""}


async def test_a_good_client_certificate_connects_and_runs_a_workflow(
    pki: Pki,
    env: Callable[..., None],
    registry: PluginRegistry,
    task_queue: str,
    unique: Callable[[str], str],
) -> None:
    env(**mtls(pki))
    client = await connect(pki.proxy.address)
    orchestrator = AdvancedPluginOrchestrator(client, task_queue=task_queue, query_timeout=5.0)
    definition = chain(unique("over-mtls"), 2)
    async with create_worker(client, task_queue=task_queue, plugins=registry):
        await orchestrator.register_workflow(definition)
        execution_id = await orchestrator.execute_workflow(definition.workflow_id)
        context = await orchestrator.wait_for_completion(execution_id, 30)
    assert context.status is WorkflowExecutionStatus.Completed, context.error_messages


@pytest.mark.parametrize(
    ("case", "problem"),
    [
        ("wrong CA", "not signed by a CA this client trusts; set TEMPORAL_TLS_CA"),
        ("no client certificate", "requires a client certificate (mTLS); set TEMPORAL_TLS_CERT"),
        ("client certificate of another CA", "does not accept the client certificate"),
        ("wrong server name", "not valid for the name this client expects"),
        ("TLS to a plain port", "does not speak TLS at this address"),
        ("plain to a TLS port", "if it requires TLS, set TEMPORAL_TLS=true"),
    ],
)
async def test_a_bad_tls_setting_is_refused_with_a_clear_error(
    pki: Pki, env: Callable[..., None], dev_server: DevServer, case: str, problem: str
) -> None:
    address = pki.proxy.address
    if case == "wrong CA":
        env(**mtls(pki, tls_ca=pki.other_ca.cert))
    elif case == "no client certificate":
        env(**mtls(pki, tls_cert="", tls_key=""))
    elif case == "client certificate of another CA":
        env(**mtls(pki, tls_cert=pki.stranger.cert, tls_key=pki.stranger.key))
    elif case == "wrong server name":
        env(**mtls(pki, tls_server_name="elsewhere.test"))
    elif case == "TLS to a plain port":
        env(**mtls(pki))
        address = dev_server.address
    else:
        env()
    with pytest.raises(PluginError) as raised:
        await connect(address)
    assert raised.value.code is PluginErrorCode.ServerUnavailable
    assert raised.value.message.startswith(f"cannot connect to Temporal at {address}: ")
    assert problem in raised.value.message


async def test_an_unreadable_tls_file_names_its_variable(
    pki: Pki, env: Callable[..., None], tmp_path: Path
) -> None:
    env(**mtls(pki, tls_ca=tmp_path / "missing.pem"))
    with pytest.raises(PluginError) as raised:
        await connect(pki.proxy.address)
    assert raised.value.code is PluginErrorCode.InvalidConfiguration
    assert raised.value.message.startswith("TEMPORAL_TLS_CA: cannot read ")


async def test_the_api_key_is_sent_as_a_bearer_token_over_tls(
    pki: Pki, env: Callable[..., None]
) -> None:
    """The dev server does not check API keys, so what can be proven here is what the
    client sends: the key, as ``authorization: Bearer <key>`` on every call, inside TLS
    (the proxy reads it after decrypting). Temporal Cloud checks it server-side."""
    env(**mtls(pki))
    before = len(pki.proxy.headers)
    await connect(pki.proxy.address)
    assert "authorization" not in {name for name, _ in pki.proxy.headers[before:]}

    env(**mtls(pki), api_key="test-key-123")
    before = len(pki.proxy.headers)
    client = await connect(pki.proxy.address)
    await client.count_workflows()
    sent = pki.proxy.headers[before:]
    calls = [value for name, value in sent if name == ":path"]
    keys = [value for name, value in sent if name == "authorization"]
    assert len(calls) >= 2
    assert keys == ["Bearer test-key-123"] * len(calls)
