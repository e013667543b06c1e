"""The studio's guard on what a client controls: the size of a request body (also when it
is chunked and announces no length) and the strength and handling of the token."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from engine import AdvancedPluginOrchestrator, PluginError, PluginErrorCode
from engine.cli import build_parser
from engine.studio import StudioServer, create_app
from engine.studio.guard import MAX_BODY, MIN_TOKEN_LENGTH

REPO = Path(__file__).resolve().parents[2]
CHUNK = 64 * 1024
GOOD_TOKEN = "k3P9-vQ2_xY7wL0a"  # exactly MIN_TOKEN_LENGTH characters


class Upload:
    """A chunked request body of ``total`` bytes made on demand, counting what was taken."""

    def __init__(self, total: int, first: bytes = b"{") -> None:
        self.total = total
        self.first = first
        self.produced = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self.first
        self.produced = len(self.first)
        while self.produced < self.total:
            yield b" " * CHUNK
            self.produced += CHUNK


async def test_a_chunked_body_over_the_limit_is_refused_on_the_bytes_read(
    app: FastAPI,
) -> None:
    """600 MiB, chunked (no Content-Length): refused once 4 MiB were read, and no more of
    it is ever taken from the client or held (the probe's body grew the process to
    1.5 GB)."""
    upload = Upload(600 * 1024 * 1024)
    transport = httpx.ASGITransport(app=app)
    tracemalloc.start()
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            response = await client.post(
                "/api/validate",
                content=upload.chunks(),
                headers={"content-type": "application/json"},
            )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert response.status_code == 413
    assert response.json()["code"] == "InvalidInput"
    assert f"{MAX_BODY:,} bytes" in response.json()["message"]
    assert response.headers["x-frame-options"] == "DENY"  # still a guarded answer
    assert upload.produced <= MAX_BODY + 2 * CHUNK, upload.produced
    assert peak < 3 * MAX_BODY, f"{peak / 1e6:.1f} MB at peak"


async def test_a_chunked_body_within_the_limit_is_served(
    app: FastAPI, worker: object, unique
) -> None:
    """Chunked bodies are fine in themselves: a definition sent in small chunks validates."""
    definition = (
        b'{"workflow_id": "%s", "nodes": [{"node_id": "a", "plugin_id": "echo"}]}'
        % unique("chunked").encode()
    )

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(definition), 7):
            yield definition[start : start + 7]

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        response = await client.post(
            "/api/validate", content=chunks(), headers={"content-type": "application/json"}
        )
    assert response.status_code == 200, response.text


async def test_a_real_server_stops_reading_a_chunked_body_past_the_limit(
    orchestrator: AdvancedPluginOrchestrator,
) -> None:
    """Through uvicorn on a socket: the server answers 413 and closes the connection, so
    the client cannot push the body's remaining hundreds of megabytes. A client still
    writing when the server closes may see the connection reset instead of the answer
    (the server stops reading: that is the point), so both outcomes are accepted here;
    what is asserted is what the server took and held."""
    server = StudioServer(orchestrator, "127.0.0.1", 0)
    await server.start()
    upload = Upload(600 * 1024 * 1024)
    outcome: int | str
    tracemalloc.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            try:
                response = await client.post(
                    "/api/validate",
                    content=upload.chunks(),
                    headers={"content-type": "application/json"},
                )
                outcome = response.status_code
            except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError) as exc:
                outcome = f"reset ({type(exc).__name__})"
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        await server.stop()
    assert outcome == 413 or str(outcome).startswith("reset"), outcome
    # What the client wrote before the server closed: the limit plus the sockets' buffers.
    assert upload.produced < 4 * MAX_BODY, upload.produced
    assert peak < 4 * MAX_BODY, f"{peak / 1e6:.1f} MB at peak"


# -- the token ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "0 characters long; at least 16"),
        ("t", "1 characters long; at least 16"),
        ("s3cret-token", "12 characters long; at least 16"),
        ("a long token with spaces", "printable ASCII without spaces"),
        ("sixteen-chars-é-", "printable ASCII without spaces"),
    ],
)
async def test_weak_or_unsendable_tokens_are_refused(
    orchestrator: AdvancedPluginOrchestrator, token: str, message: str
) -> None:
    with pytest.raises(PluginError) as info:
        create_app(orchestrator, token=token)
    assert info.value.code is PluginErrorCode.InvalidConfiguration
    assert message in info.value.message
    with pytest.raises(PluginError) as info:
        StudioServer(orchestrator, "0.0.0.0", 0, token=token)
    # An empty token is no token: refused for a public address like none.
    assert (message if token else "without a token") in info.value.message
    assert len(GOOD_TOKEN) == MIN_TOKEN_LENGTH
    create_app(orchestrator, token=GOOD_TOKEN)


def _studio_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["studio", *argv])


def test_the_cli_reads_the_token_from_a_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine.cli.hosting import studio_token as _studio_token
    from engine.cli.parser import ENV_STUDIO_TOKEN

    monkeypatch.delenv(ENV_STUDIO_TOKEN, raising=False)
    assert _studio_token(_studio_args()) is None
    monkeypatch.setenv(ENV_STUDIO_TOKEN, "")
    assert _studio_token(_studio_args()) is None  # empty: no token
    monkeypatch.setenv(ENV_STUDIO_TOKEN, GOOD_TOKEN + "-env")
    assert _studio_token(_studio_args()) == GOOD_TOKEN + "-env"
    path = tmp_path / "token"
    path.write_text(GOOD_TOKEN + "\n")  # as `echo` or a mounted Secret writes it
    assert _studio_token(_studio_args("--token-file", str(path))) == GOOD_TOKEN
    assert capsys.readouterr().err == ""  # no warning for these
    # On the command line it still works, with a warning naming the risk and the remedy.
    assert _studio_token(_studio_args("--token", GOOD_TOKEN)) == GOOD_TOKEN
    warning = capsys.readouterr().err
    assert "warning: --token puts the studio's token on the command line" in warning
    assert "(ps, /proc/PID/cmdline)" in warning
    assert ENV_STUDIO_TOKEN in warning
    assert "--token-file" in warning


def _cli(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, against an address where nothing listens: a token
    refusal must come before any connection or server start."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TEMPORAL_", "ORCHESTRATOR_"))
    }
    environment.update(PYTHONPATH=str(REPO), ORCHESTRATOR_DATA_DIR=str(tmp_path / "data"), **env)
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", "--address", "127.0.0.1:9", "studio", *argv],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_cli_refuses_bad_tokens_before_starting(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("abc\n")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    cases = [
        (["--token", "abc"], {}, 1, "3 characters long; at least 16"),
        (["--token-file", str(short)], {}, 1, "3 characters long; at least 16"),
        (["--token-file", str(empty)], {}, 1, f"the token file {empty} is empty"),
        (["--token-file", str(tmp_path / "missing")], {}, 1, "cannot read the token file"),
        ([], {"ORCHESTRATOR_STUDIO_TOKEN": "abc"}, 1, "3 characters long; at least 16"),
        (["--token", GOOD_TOKEN, "--token-file", str(short)], {}, 2, "not both"),
    ]
    for argv, env, code, message in cases:
        result = _cli(tmp_path, *argv, **env)
        output = f"{argv} {env}: {result.returncode}\n{result.stdout}\n{result.stderr}"
        assert result.returncode == code, output
        assert message in result.stderr, output
        assert "Traceback" not in result.stderr, output
        assert "studio:" not in result.stdout, output  # never served
