"""The examples as a new user runs them: from a fresh clone, one documented command each,
on the embedded Temporal server, writing only into ignored folders.

The clone is of this repository (its working-tree changes copied over, so the test sees what
is being changed). The CLI runs as ``python -m engine.cli`` (what the ``orchestrator`` script
runs) with the clone first on the path, in the clone, with a private data directory and
private embedded-server ports: nothing touches the user's server or data. ``make -n`` checks
that the documented make targets run the same commands, and examples/README.md that it gives
them. Afterwards the clone's ``git status`` is what it was before.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.hosting.devserver import free_port

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# The commands examples/README.md documents, after `orchestrator` (and the make targets).
QUICKSTART = ("run", "examples/quickstart.json", "--follow")
STREAMING = ("run", "examples/streaming_pipeline.json", "--follow")
EVENTS = ("run", "examples/event_driven_files.json", "--follow")
TARGETS = {"example": QUICKSTART, "example-stream": STREAMING, "example-events": EVENTS}

# What the CLI may say on stderr: where the embedded server runs, and the registration.
ALLOWED_STDERR = (
    re.compile(r"started the embedded Temporal server at 127\.0\.0\.1:\d+; web UI at \S+"),
    re.compile(r"  data: \S+temporal\.db"),
    re.compile(r"  it keeps running in the background; stop it with `orchestrator server stop.*`"),
    re.compile(r"registered [a-z_]+ \(version 1\)"),
    re.compile(r"using registered [a-z_]+ \(version 1, unchanged\)"),
)


@dataclass
class Clone:
    path: Path
    env: dict[str, str]
    status_before: str

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "engine.cli", *args],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def status(self) -> str:
        return _git(self.path, "status", "--porcelain")


def _git(where: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=where, capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture(name="clone", scope="module")
def fixture_clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clone]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and a git checkout of the repository")
    base = tmp_path_factory.mktemp("examples")
    path = base / "plugin-orchestrator"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(path)], check=True)
    _copy_working_tree_changes(path)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TEMPORAL_", "ORCHESTRATOR_"))
    }
    env.update(
        PYTHONPATH=str(path),
        ORCHESTRATOR_DATA_DIR=str(base / "data"),
        ORCHESTRATOR_EMBEDDED_PORT=str(free_port()),
        ORCHESTRATOR_EMBEDDED_UI_PORT=str(free_port()),
    )
    clone = Clone(path, env, status_before=_git(path, "status", "--porcelain"))
    try:
        yield clone
    finally:
        stopped = clone.cli("server", "stop", timeout=60)
        assert stopped.returncode == 0, stopped.stderr


def _copy_working_tree_changes(clone: Path) -> None:
    """Files changed since HEAD (and new ones git does not ignore), as they are now."""
    changed = _git(REPO, "diff", "--name-only", "HEAD").split("\n")
    changed += _git(REPO, "ls-files", "--others", "--exclude-standard").split("\n")
    for name in filter(None, changed):
        source, target = REPO / name, clone / name
        if source.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        else:
            target.unlink(missing_ok=True)


def _check_stderr(result: subprocess.CompletedProcess[str]) -> None:
    for line in result.stderr.splitlines():
        assert any(pattern.fullmatch(line) for pattern in ALLOWED_STDERR), result.stderr


def _execution_id(stdout: str) -> str:
    match = re.search(r"^execution: (\S+)$", stdout, re.MULTILINE)
    assert match, stdout
    return match.group(1)


def test_the_documented_commands_are_the_make_targets(clone: Clone) -> None:
    readme = (clone.path / "examples" / "README.md").read_text()
    for target, args in TARGETS.items():
        # Under `make test` the parent make's MAKEFLAGS/MAKELEVEL would make this one print
        # "Entering/Leaving directory" lines: run it as a user's shell would.
        env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
        dry_run = subprocess.run(
            ["make", "--no-print-directory", "-n", target],
            cwd=clone.path,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        command = " ".join(args)
        assert dry_run.stdout.splitlines()[-1] == f".venv/bin/orchestrator {command}"
        assert f"make {target}" in readme
        assert f"orchestrator {command}" in readme


def test_quickstart_from_a_fresh_clone(clone: Clone) -> None:
    result = clone.cli(*QUICKSTART)
    assert result.returncode == 0, result.stdout + result.stderr
    _check_stderr(result)
    assert "status: completed" in result.stdout
    results = json.loads(result.stdout.split("results: ", 1)[1])
    assert results["output"]["path"] == ".data/examples/quickstart-output.jsonl"
    written = (clone.path / results["output"]["path"]).read_text().splitlines()
    assert [json.loads(line)["name"] for line in written] == ["BARBARA", "ADA", "ALAN"]
    assert clone.status() == clone.status_before


def test_streaming_example_from_a_fresh_clone(clone: Clone) -> None:
    for _ in range(2):  # a second run upserts the same rows: nothing twice
        result = clone.cli(*STREAMING)
        assert result.returncode == 0, result.stdout + result.stderr
        _check_stderr(result)
        assert "status: completed" in result.stdout
    database = clone.path / ".data" / "examples" / "stream-output.db"
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT id, amount, total, label FROM orders").fetchall()
    sources = [
        json.loads(line)
        for part in sorted((clone.path / "examples" / "stream-data").glob("*.jsonl"))
        for line in part.read_text().splitlines()
    ]
    expected = {item["id"]: item for item in sources if item["amount"] >= 10}
    assert len(expected) >= 5
    assert {row[0] for row in rows} == set(expected)
    for key, amount, total, label in rows:
        assert total == amount * expected[key]["price"]
        assert label == expected[key]["name"].upper()
    assert clone.status() == clone.status_before


def test_event_driven_example_from_a_fresh_clone(clone: Clone) -> None:
    zone = clone.path / ".data" / "examples" / "drop-zone"
    assert not zone.exists()  # the run creates it
    errors = clone.path.parent / "events.stderr"  # a file: a full pipe would block the CLI
    with (
        errors.open("w") as stderr,
        subprocess.Popen(
            [sys.executable, "-m", "engine.cli", *EVENTS],
            cwd=clone.path,
            env=clone.env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        ) as process,
    ):
        seen: list[str] = []
        lines: queue.Queue[str] = queue.Queue()

        def read() -> None:
            for line in process.stdout or []:
                seen.append(line)
                lines.put(line)

        reader = threading.Thread(target=read)
        reader.start()
        try:
            first = _next_line(lines, lambda line: line.startswith("execution: "))
            execution_id = first.removeprefix("execution: ").strip()
            _drop_files_and_check_results(zone)
            cancelled = clone.cli("cancel", execution_id)
            assert cancelled.returncode == 0, cancelled.stderr
            assert cancelled.stderr == ""
            assert process.wait(timeout=120) == 1  # ended by the cancellation, not completed
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            reader.join(timeout=10)
    stdout = "".join(seen)
    assert "status: cancelled" in stdout
    assert stdout.count("event_processed") == 2
    _check_stderr(subprocess.CompletedProcess(process.args, 1, stdout, errors.read_text()))
    assert clone.status() == clone.status_before


def _drop_files_and_check_results(zone: Path) -> None:
    """What examples/README.md tells the user to drop in, and what they then find."""
    _wait_for(lambda: (zone / "incoming").is_dir())
    (zone / "incoming" / "scores.csv").write_text("name,score\nada,91\nalan,85\n")
    (zone / "incoming" / "broken.csv").write_text("name,score\nada,91,extra\n")
    summary = zone / "processed" / "scores.summary.json"
    _wait_for(lambda: summary.is_file() and (zone / "quarantine" / "broken.csv").is_file())
    assert json.loads(summary.read_text())["numeric"]["score"]["sum"] == 176
    [report] = (zone / "errors").glob("broken-*.error.json")
    # Control connections carry no data: the handler gets the triggering file's event.
    assert json.loads(report.read_text())["inputs"]["name"] == "broken.csv"
    assert not (zone / "incoming" / "broken.csv").exists()


def _next_line(lines: queue.Queue[str], wanted: Callable[[str], bool]) -> str:
    deadline = time.monotonic() + 120
    while True:
        line = lines.get(timeout=max(deadline - time.monotonic(), 0.1))
        if wanted(line):
            return line


def _wait_for(condition: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)
