"""The ``orchestrator`` CLI, run for real as a subprocess against the session's dev server.

Every call is a fresh process (about a second each), so the tests group several commands.
Each call asserts that the process did not abort at exit (``Fatal Python error``), which
happens when Temporal's native objects outlive the interpreter's shutdown.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from engine.hosting.devserver import DevServer, free_port
from engine.temporal.catalog import describe_plugins
from plugins import PluginRegistry

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "examples" / "quickstart.json"

pytestmark = pytest.mark.integration


class Cli(Protocol):
    def __call__(
        self, *args: str, expect: int | None = 0, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]: ...


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The test process's environment without Temporal settings, importing this repo."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TEMPORAL_", "ORCHESTRATOR_"))
    }
    env["PYTHONPATH"] = str(REPO)
    env["ORCHESTRATOR_DATA_DIR"] = str(tmp_path / "data")  # never the user's directory
    env.update(extra)
    return env


def _run_cli(
    args: list[str], cwd: Path, env: dict[str, str], expect: int | None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    output = f"$ orchestrator {' '.join(args)}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Fatal Python error" not in result.stderr, output
    assert "Traceback" not in result.stderr, output
    if expect is not None:
        assert result.returncode == expect, output
    return result


@pytest.fixture(name="cli")
def fixture_cli(dev_server: DevServer, task_queue: str, tmp_path: Path) -> Cli:
    """Runs the CLI against the session's server on the test's task queue, in ``tmp_path``."""

    def cli(
        *args: str, expect: int | None = 0, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        full = ["--address", dev_server.address, "--task-queue", task_queue, *args]
        return _run_cli(full, tmp_path, env or _env(tmp_path), expect)

    return cli


@pytest.fixture(name="definition_file")
def fixture_definition_file(tmp_path: Path, unique: Callable[[str], str]) -> Path:
    """The quick-start example under a unique workflow id."""
    data = json.loads(QUICKSTART.read_text())
    data["workflow_id"] = unique("quickstart")
    path = tmp_path / "quickstart.json"
    path.write_text(json.dumps(data))
    return path


def _definition(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _execution_id(stdout: str) -> str:
    for line in stdout.splitlines():
        if line.startswith("execution: "):
            return line.removeprefix("execution: ").strip()
    raise AssertionError(f"no execution id in {stdout!r}")


def _eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


# -- no server needed -------------------------------------------------------------------------


def _installed_plugins() -> int:
    """How many plugin ids a worker started in this environment would offer."""
    return len(describe_plugins(PluginRegistry.default()))


def test_validate_accepts_the_quickstart(tmp_path: Path) -> None:
    result = _run_cli(["validate", str(QUICKSTART)], tmp_path, _env(tmp_path), 0)
    assert result.stdout.strip() == (
        "valid: quickstart (3 nodes, 2 connections, Sequential); structure, plugins and "
        f"configurations checked against {_installed_plugins()} built-in and installed plugins"
    )
    assert result.stderr == ""
    result = _run_cli(
        ["validate", "--structure-only", str(QUICKSTART)], tmp_path, _env(tmp_path), 0
    )
    assert result.stdout.strip() == (
        "structure valid: quickstart (3 nodes, 2 connections, Sequential); plugins and "
        "configurations not checked"
    )


def _quickstart_with(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    data = _definition(QUICKSTART)
    change(data)
    path = tmp_path / "changed.json"
    path.write_text(json.dumps(data))
    return path


def _refused(tmp_path: Path, path: Path) -> str:
    """``orchestrator validate``'s one-line error (stdout empty, exit code 1)."""
    result = _run_cli(["validate", str(path)], tmp_path, _env(tmp_path), 1)
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr.strip()


LOCAL_NOTE = (
    "(plugins and configurations were checked against the {n} built-in and installed plugins "
    "of this Python environment; workers may offer others: `orchestrator validate "
    "--structure-only` checks structure only)"
)


def test_validate_refuses_an_expression_that_cannot_compile(tmp_path: Path) -> None:
    def incomplete_filter(data: dict[str, Any]) -> None:
        data["nodes"][1]["configuration"]["filter"] = "score >= "

    path = _quickstart_with(tmp_path, incomplete_filter)
    assert _refused(tmp_path, path) == (
        "error: InvalidWorkflowStructure: workflow 'quickstart' is invalid: node 'process' "
        "(plugin 'data_processor') configuration: filter: 'score >= ' is not valid CEL: syntax "
        f"error at column 7 {LOCAL_NOTE.format(n=_installed_plugins())}"
    )
    # Structure alone is fine, and the output says what was not checked.
    result = _run_cli(["validate", "--structure-only", str(path)], tmp_path, _env(tmp_path), 0)
    assert result.stdout.startswith("structure valid: quickstart ")
    assert result.stdout.rstrip().endswith("; plugins and configurations not checked")


def test_validate_refuses_an_unknown_plugin_and_a_misspelled_key(tmp_path: Path) -> None:
    def unknown_plugin(data: dict[str, Any]) -> None:
        data["nodes"][1]["plugin_id"] = "data_procesor"

    message = _refused(tmp_path, _quickstart_with(tmp_path, unknown_plugin))
    assert message.startswith(
        "error: PluginNotFound: workflow 'quickstart' is invalid: node 'process' uses plugin "
        "'data_procesor', which neither the built-ins nor an installed package offer as a "
        "node plugin (offered: csv_processor, data_filter, data_processor, "
    )
    assert message.endswith(LOCAL_NOTE.format(n=_installed_plugins()))

    def misspelled_key(data: dict[str, Any]) -> None:
        data["nodes"][1]["configuration"]["sortby"] = "score"

    message = _refused(tmp_path, _quickstart_with(tmp_path, misspelled_key))
    assert message.startswith(
        "error: InvalidWorkflowStructure: workflow 'quickstart' is invalid: node 'process' "
        "(plugin 'data_processor') configuration: Additional properties are not allowed "
        "('sortby' was unexpected) (not a configuration field; did you mean 'sort_by'?)"
    )
    assert "--structure-only" in message


def test_validate_reports_every_problem_at_once(tmp_path: Path) -> None:
    def two_problems(data: dict[str, Any]) -> None:
        data["nodes"][1]["configuration"]["filter"] = "score >= "
        data["connections"][1]["target_node"] = "nowhere"
        data["nodes"][2]["plugin_id"] = "data_snk"

    message = _refused(tmp_path, _quickstart_with(tmp_path, two_problems))
    assert message.startswith("error: NodeNotFound: workflow 'quickstart' has 3 problems: ")
    assert "target_node 'nowhere' is not a node of the workflow" in message
    assert "filter: 'score >= ' is not valid CEL" in message
    assert "node 'output' uses plugin 'data_snk', which neither the built-ins" in message
    assert message.index("nowhere") < message.index("score >= ") < message.index("data_snk")


PACKAGE = """
from pydantic import BaseModel, ConfigDict

from plugins import CelExpression, plugin


class StampConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str
    value: CelExpression


def stamp(inputs, config, ctx):
    return {}


PLUGINS = [plugin("stamp", config=StampConfig)(stamp)]
"""


def test_validate_checks_plugins_of_installed_packages(tmp_path: Path) -> None:
    """A package installed next to the CLI offers a plugin through the entry point group:
    its id and configuration (an expression field included) are checked like a built-in's."""
    site = tmp_path / "site"
    (site / "stamp_plugins").mkdir(parents=True)
    (site / "stamp_plugins" / "__init__.py").write_text(PACKAGE)
    info = site / "stamp_plugins-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: stamp-plugins\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[orchestrator.plugins]\nstamp = stamp_plugins:PLUGINS\n"
    )
    env = _env(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(site)])

    def with_stamp(value: str) -> Callable[[dict[str, Any]], None]:
        def change(data: dict[str, Any]) -> None:
            data["nodes"][1] = {
                "node_id": "process",
                "plugin_id": "stamp",
                "configuration": {"field": "seen", "value": value},
            }

        return change

    good = _quickstart_with(tmp_path, with_stamp("score * 2"))
    result = _run_cli(["validate", str(good)], tmp_path, env, 0)
    assert f"checked against {_installed_plugins() + 1} built-in and installed plugins" in (
        result.stdout
    )
    bad = _quickstart_with(tmp_path, with_stamp("score *"))
    result = _run_cli(["validate", str(bad)], tmp_path, env, 1)
    assert (
        "node 'process' (plugin 'stamp') configuration: value: 'score *' is not valid CEL"
        in result.stderr
    )
    # Without the package the plugin is unknown here.
    result = _run_cli(["validate", str(good)], tmp_path, _env(tmp_path), 1)
    assert "uses plugin 'stamp', which neither the built-ins nor an installed package" in (
        result.stderr
    )


def test_validate_reports_the_problem(tmp_path: Path) -> None:
    data = _definition(QUICKSTART)
    data["connections"][1]["target_node"] = "nowhere"
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(data))
    result = _run_cli(["validate", str(broken)], tmp_path, _env(tmp_path), 1)
    assert result.stderr.startswith("error: NodeNotFound: ")
    assert "nowhere" in result.stderr

    not_json = tmp_path / "not.json"
    not_json.write_text("{nodes: []")
    result = _run_cli(["validate", str(not_json)], tmp_path, _env(tmp_path), 1)
    assert "error: InvalidWorkflowStructure:" in result.stderr
    assert "not valid JSON" in result.stderr


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    result = _run_cli(["run"], tmp_path, _env(tmp_path), 2)
    assert "ID_OR_FILE" in result.stderr
    _run_cli(["frobnicate"], tmp_path, _env(tmp_path), 2)
    _run_cli([], tmp_path, _env(tmp_path), 2)


# -- against the session's server -------------------------------------------------------------


def test_register_list_show(cli: Cli, definition_file: Path) -> None:
    workflow_id = _definition(definition_file)["workflow_id"]
    result = cli("register", str(definition_file))
    assert f"registered {workflow_id} (version 1)" in result.stdout

    _eventually(lambda: workflow_id in cli("list").stdout.split())
    shown = json.loads(cli("show", workflow_id).stdout)
    assert shown["workflow_id"] == workflow_id
    assert shown["version"] == 1
    assert [node["node_id"] for node in shown["nodes"]] == ["input", "process", "output"]

    again = cli("register", str(definition_file), expect=1)
    assert f"error: WorkflowAlreadyExists: workflow '{workflow_id}'" in again.stderr

    data = _definition(definition_file)
    data["description"] = "changed"
    definition_file.write_text(json.dumps(data))
    replaced = cli("register", str(definition_file), "--replace")
    assert f"updated {workflow_id} to version 2" in replaced.stdout

    cli("unregister", workflow_id)
    missing = cli("show", workflow_id, expect=1)
    assert "error: WorkflowNotFound:" in missing.stderr


def test_run_file_follow_then_inspect_without_worker(
    cli: Cli, definition_file: Path, tmp_path: Path
) -> None:
    workflow_id = _definition(definition_file)["workflow_id"]
    result = cli("run", str(definition_file), "--follow", "--timeout", "60")
    assert f"registered {workflow_id} (version 1)" in result.stderr
    execution_id = _execution_id(result.stdout)
    assert execution_id.startswith(f"{workflow_id}/run-")
    for node_id in ("input", "process", "output"):
        assert any(
            line.split()[1:3] == ["node_completed", node_id] for line in result.stdout.splitlines()
        ), result.stdout
    assert "workflow_completed" in result.stdout
    assert "100%" in result.stdout
    assert "status: completed" in result.stdout
    results = json.loads(result.stdout.split("results: ", 1)[1])
    assert results["output"]["count"] == 3
    written = (tmp_path / results["output"]["path"]).read_text().splitlines()
    assert [json.loads(line)["name"] for line in written] == ["BARBARA", "ADA", "ALAN"]

    # The CLI's worker is gone: ended runs are answered from what Temporal stored.
    status = cli("status", execution_id)
    assert "status:       completed" in status.stdout
    assert "progress:     100%" in status.stdout
    assert any(
        line.split()[:5] == ["3", "✔", "output", "data_sink", "process"]
        for line in status.stdout.splitlines()
    ), status.stdout
    context = json.loads(cli("status", execution_id, "--json").stdout)
    assert context["status"] == "completed"
    assert context["execution_id"] == execution_id

    events = cli("events", execution_id, "--after", "8")
    assert [line.split()[0] for line in events.stdout.splitlines()] == ["9", "10", "11"]

    paused = cli("pause", execution_id, expect=1)
    assert paused.stderr.startswith("error: InvalidState: ")
    cancelled = cli("cancel", execution_id, expect=1)
    assert cancelled.stderr.startswith("error: InvalidState: ")

    # Same file again: the registered definition is reused, not re-registered.
    rerun = cli("run", str(definition_file), "--input", '{"note": "again"}')
    assert "unchanged" in rerun.stderr
    assert "status: completed" in rerun.stdout


def test_graph_exports_files_definitions_and_executions(cli: Cli, definition_file: Path) -> None:
    workflow_id = _definition(definition_file)["workflow_id"]
    from_file = cli("graph", str(definition_file))
    assert from_file.stdout.splitlines() == [
        "flowchart LR",
        '    n0["Data Source<br/><small>data_source</small>"]',
        '    n1["Data Processor<br/><small>data_processor</small>"]',
        '    n2["Data Sink<br/><small>data_sink</small>"]',
        "    n0 --> n1",
        "    n1 --> n2",
    ]
    execution_id = _execution_id(cli("run", str(definition_file), "--timeout", "60").stdout)

    registered = cli("graph", workflow_id, "--format", "dot").stdout
    assert registered.startswith(f'digraph "{workflow_id}" {{')
    assert '    "input" -> "process" [style=solid];' in registered

    # The execution's own snapshot, coloured by its node states, read without a worker.
    coloured = cli("graph", "--execution", execution_id).stdout
    assert coloured.count(":::completed") == 3
    mismatch = cli("graph", "other-workflow", "--execution", execution_id, expect=2)
    assert f"runs workflow '{workflow_id}', not 'other-workflow'" in mismatch.stderr
    unknown = cli("graph", "no-such-workflow", expect=1)
    assert unknown.stderr.startswith("error: WorkflowNotFound: ")
    bad_format = cli("graph", str(definition_file), "--format", "svg", expect=2)
    assert "invalid choice: 'svg'" in bad_format.stderr


def test_follow_draws_the_graph_live_on_a_terminal(
    dev_server: DevServer, task_queue: str, definition_file: Path, tmp_path: Path
) -> None:
    """On a terminal, ``run --follow`` redraws the graph as nodes change: the input node is
    drawn running while its file is missing (it retries every second), then completed once
    the file appears."""
    data = _definition(definition_file)
    records = tmp_path / "records.json"
    data["nodes"][0]["configuration"] = {"path": str(records)}
    data["global_configuration"] = {
        "retry": {"max_attempts": 60, "initial_interval": 1, "backoff_coefficient": 1}
    }
    definition_file.write_text(json.dumps(data))
    args = ["--address", dev_server.address, "--task-queue", task_queue]
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", *args, "run", str(definition_file), "--follow"],
        cwd=tmp_path,
        env=_env(tmp_path, COLUMNS="160", LINES="40", TERM="xterm-256color"),
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    screen = bytearray()

    def read_until(text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in _without_ansi(bytes(screen)):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {text!r} on the terminal:\n{_without_ansi(bytes(screen))!r}"
            ready, _, _ = select.select([primary], [], [], min(remaining, 0.5))
            if ready:
                try:
                    screen.extend(os.read(primary, 65536))
                except OSError:  # the process ended and closed the terminal
                    assert text.encode() in _without_ansi(bytes(screen)), bytes(screen)

    try:
        read_until("◷ input", timeout=60)
        assert b"\x1b[" in screen  # drawn with cursor movement and colour, not printed lines
        records.write_text(json.dumps([{"name": "ada", "score": 91}]))
        read_until("status: completed", timeout=60)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(primary)
    final_frame = _without_ansi(bytes(screen)).decode().rsplit("execution:", 1)[1]
    for node_id in ("input", "process", "output"):
        assert f"✔ {node_id}" in final_frame, final_frame


def _without_ansi(data: bytes) -> bytes:
    return re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", data)


def test_failed_run_exits_1(cli: Cli, definition_file: Path) -> None:
    data = _definition(definition_file)
    data["nodes"][1]["configuration"]["filter"] = "missing_field >= 80"
    definition_file.write_text(json.dumps(data))
    result = cli("run", str(definition_file), "--timeout", "60", expect=1)
    assert "status: failed" in result.stdout
    assert "error: node 'process'" in result.stdout


def test_errors_name_the_problem(cli: Cli, definition_file: Path) -> None:
    unknown = cli("status", "no-such-workflow/run-0", expect=1)
    assert unknown.stderr.startswith("error: ExecutionNotFound: ")
    cli("pause", "no-such-workflow/run-0", expect=1)

    bad_input = cli("run", str(definition_file), "--input", "[1, 2]", expect=1)
    assert bad_input.stderr.startswith("error: InvalidInput: --input must be a JSON object")

    not_registered = cli("run", "no-such-workflow", expect=1)
    assert "error: WorkflowNotFound:" in not_registered.stderr

    detached = cli("run", str(definition_file), "--detach", expect=2)
    assert "--detach needs a worker polling task queue" in detached.stderr
    assert "execution:" not in detached.stdout


def test_worker_serves_detached_runs_and_control(
    dev_server: DevServer,
    task_queue: str,
    cli: Cli,
    definition_file: Path,
    tmp_path: Path,
    unique: Callable[[str], str],
) -> None:
    # A node that keeps failing and retrying (a missing file, 100 attempts 1 s apart) stays
    # running long enough to pause, resume and cancel.
    slow = _definition(definition_file)
    slow["workflow_id"] = unique("retrying")
    slow["nodes"][0]["configuration"] = {"path": str(tmp_path / "missing.json")}
    slow["global_configuration"] = {
        "retry": {"max_attempts": 100, "initial_interval": 1, "backoff_coefficient": 1}
    }
    slow_file = tmp_path / "retrying.json"
    slow_file.write_text(json.dumps(slow))

    worker_args = ["--address", dev_server.address, "--task-queue", task_queue]
    with subprocess.Popen(
        [sys.executable, str(REPO / "worker.py"), *worker_args, "--graceful-shutdown", "2"],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as worker:
        try:
            started: list[str] = []

            def detached_run_starts() -> bool:
                result = cli("run", str(definition_file), "--detach", expect=None)
                if result.returncode == 0:
                    started.append(_execution_id(result.stdout))
                    return True
                assert result.returncode == 2, result.stderr  # worker not polling yet
                return False

            _eventually(detached_run_starts, timeout=30)
            events = cli("events", started[0])
            assert events.stdout.splitlines()[-1].split()[1] == "workflow_completed"

            execution_id = _execution_id(cli("run", str(slow_file), "--detach").stdout)
            _eventually(lambda: execution_id in cli("executions").stdout.split())
            assert cli("pause", execution_id).stdout.strip() == f"paused {execution_id}"
            assert "status:       paused" in cli("status", execution_id).stdout
            twice = cli("pause", execution_id, expect=1)
            assert twice.stderr.startswith("error: InvalidState: ")
            cli("resume", execution_id)
            assert "status:       running" in cli("status", execution_id).stdout
            cli("cancel", execution_id)
            kinds = [line.split()[1] for line in cli("events", execution_id).stdout.splitlines()]
            assert kinds[-3:] == ["workflow_resumed", "node_cancelled", "workflow_cancelled"]
            assert "status:       cancelled" in cli("status", execution_id).stdout
        finally:
            worker.send_signal(signal.SIGTERM)
            _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr
    assert "Fatal Python error" not in stderr
    assert "worker stopped" in stderr


# -- the embedded server ----------------------------------------------------------------------


@pytest.fixture(name="embedded_env")
def fixture_embedded_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for a private embedded server on free ports; stopped afterwards."""
    env = _env(
        tmp_path,
        ORCHESTRATOR_EMBEDDED_PORT=str(free_port()),
        ORCHESTRATOR_EMBEDDED_UI_PORT=str(free_port()),
    )
    yield env
    _run_cli(["server", "stop"], tmp_path, env, 0)


@pytest.mark.slow
def test_server_start_status_stop(tmp_path: Path, embedded_env: dict[str, str]) -> None:
    data_dir = tmp_path / "server"
    port, ui_port = free_port(), free_port()
    common = ["--data-dir", str(data_dir)]
    try:
        started = _run_cli(
            ["server", "start", "--port", str(port), "--ui-port", str(ui_port), *common],
            tmp_path,
            embedded_env,
            0,
        )
        assert f"address: 127.0.0.1:{port}" in started.stdout
        assert f"web ui:  http://127.0.0.1:{ui_port}" in started.stdout
        assert (data_dir / "temporal.db").exists()
        status = _run_cli(["server", "status", *common], tmp_path, embedded_env, 0)
        assert status.stdout.startswith("running")
        again = _run_cli(["server", "start", *common], tmp_path, embedded_env, 0)
        assert "already running" in again.stdout
    finally:
        stopped = _run_cli(["server", "stop", *common], tmp_path, embedded_env, 0)
    assert "stopped" in stopped.stdout
    _run_cli(["server", "status", *common], tmp_path, embedded_env, 1)
    assert (
        "no embedded Temporal server"
        in _run_cli(["server", "stop", *common], tmp_path, embedded_env, 0).stdout
    )


@pytest.mark.slow
def test_run_starts_the_embedded_server(tmp_path: Path, embedded_env: dict[str, str]) -> None:
    result = _run_cli(["run", str(QUICKSTART), "--timeout", "60"], tmp_path, embedded_env, 0)
    port = embedded_env["ORCHESTRATOR_EMBEDDED_PORT"]
    ui_port = embedded_env["ORCHESTRATOR_EMBEDDED_UI_PORT"]
    assert f"started the embedded Temporal server at 127.0.0.1:{port}" in result.stderr
    assert "server stop" in result.stderr
    execution_id = _execution_id(result.stdout)
    link = f"temporal ui: http://127.0.0.1:{ui_port}/namespaces/default/workflows/"
    assert f"{link}{execution_id.replace('/', '%2F')}" in result.stdout
    assert "status: completed" in result.stdout

    # The server outlived the command: the next one finds it and the stored run.
    status = _run_cli(["status", execution_id], tmp_path, embedded_env, 0)
    assert "status:       completed" in status.stdout
    assert "started the embedded" not in status.stderr
    server = _run_cli(["server", "status"], tmp_path, embedded_env, 0)
    assert f"address: 127.0.0.1:{port}" in server.stdout


def test_schedule_commands(cli: Cli, definition_file: Path) -> None:
    workflow_id = _definition(definition_file)["workflow_id"]
    cli("register", str(definition_file))
    schedule_id = f"{workflow_id}-nightly"
    created = cli(
        "schedule", "create", workflow_id, "--cron", "0 2 * * *", "--time-zone", "Asia/Tokyo",
        "--id", schedule_id, "--input", '{"day": "today"}', "--overlap", "buffer_one",
    )  # fmt: skip
    assert f"schedule: {schedule_id}" in created.stdout
    assert "next runs: " in created.stdout
    assert "17:00:00 UTC" in created.stdout  # 02:00 in Tokyo

    _eventually(lambda: schedule_id in cli("schedule", "list").stdout.split())
    rows = json.loads(cli("schedule", "list", "--workflow", workflow_id, "--json").stdout)
    assert [row["schedule_id"] for row in rows] == [schedule_id]
    assert rows[0]["cron"] == "0 2 * * *"

    assert cli("schedule", "pause", schedule_id, "--note", "holiday").stdout.strip() == (
        f"paused {schedule_id}"
    )
    shown = cli("schedule", "show", schedule_id).stdout
    assert "state:     paused (holiday)" in shown
    assert "overlap:   buffer_one" in shown
    assert 'input:     {"day": "today"}' in shown
    cli("schedule", "resume", schedule_id)
    cli("schedule", "trigger", schedule_id)
    cli(
        "schedule", "backfill", schedule_id,
        "--start", "2026-01-01T00:00:00+09:00", "--end", "2026-01-03T00:00:00+09:00",
        "--overlap", "allow_all",
    )  # fmt: skip

    def three_runs() -> bool:
        details = json.loads(cli("schedule", "show", schedule_id, "--json").stdout)
        return len(details["recent_runs"]) == 3

    _eventually(three_runs)
    details = json.loads(cli("schedule", "show", schedule_id, "--json").stdout)
    assert not details["paused"]
    scheduled = sorted(run["scheduled_at"] for run in details["recent_runs"])
    assert scheduled[:2] == ["2025-12-31T17:00:00Z", "2026-01-01T17:00:00Z"]
    for run in details["recent_runs"]:
        assert run["execution_id"].startswith(f"{workflow_id}/run-s")
    refused = cli("unregister", workflow_id, expect=1)
    assert f"error: InvalidState: workflow '{workflow_id}' is run by schedules" in refused.stderr

    bad = cli("schedule", "create", workflow_id, "--every", "-5", expect=1)
    assert "error: InvalidInput: '-5' is not a duration" in bad.stderr
    bad = cli("schedule", "create", workflow_id, "--every", "10s", "--time-zone", "UTC", expect=1)
    assert "time_zone applies to cron schedules only" in bad.stderr
    cli("schedule", "create", workflow_id, expect=2)  # neither --cron nor --every

    assert cli("schedule", "delete", schedule_id).stdout.strip() == f"deleted {schedule_id}"
    missing = cli("schedule", "show", schedule_id, expect=1)
    assert f"error: ScheduleNotFound: schedule '{schedule_id}' does not exist" in missing.stderr
