"""The CLI as a new user meets it: missing files, re-registering, listing executions, the
README's `graph FILE --execution ID`. Each call is a fresh process."""

from __future__ import annotations

import json
from pathlib import Path

from temporalio.client import WorkflowExecutionStatus as TemporalStatus

from engine.client.executions import status_name
from tests.integration.test_cli import (  # noqa: F401 (fixtures by name)
    Cli,
    _definition,
    _execution_id,
    fixture_cli,
    fixture_definition_file,
)


def test_run_of_a_missing_file_says_the_file_is_missing(cli: Cli) -> None:
    result = cli("run", "nosuch.json", expect=1)
    assert "no such file: nosuch.json" in result.stderr
    assert "Traceback" not in result.stderr


def test_register_again_suggests_replace_and_replace_of_the_same_file_keeps_the_version(
    cli: Cli, definition_file: Path
) -> None:
    workflow_id = _definition(definition_file)["workflow_id"]
    cli("register", str(definition_file))
    again = cli("register", str(definition_file), expect=1)
    assert "error: WorkflowAlreadyExists:" in again.stderr
    assert f"orchestrator register {definition_file} --replace" in again.stderr

    unchanged = cli("register", str(definition_file), "--replace")
    assert f"using registered {workflow_id} (version 1, unchanged)" in unchanged.stdout
    assert json.loads(cli("show", workflow_id).stdout)["version"] == 1

    data = _definition(definition_file)
    data["description"] = "changed"
    definition_file.write_text(json.dumps(data))
    changed = cli("register", str(definition_file), "--replace")
    assert f"updated {workflow_id} to version 2" in changed.stdout


def test_executions_lists_past_runs_with_filters_and_pages(
    cli: Cli, definition_file: Path, unique
) -> None:
    workflow_id = _definition(definition_file)["workflow_id"]
    empty = cli("executions", "--workflow", workflow_id)
    assert empty.stdout.strip().startswith(f"no executions (workflow {workflow_id})")

    first = _execution_id(cli("run", str(definition_file), "--timeout", "60").stdout)
    second = _execution_id(cli("run", str(definition_file), "--timeout", "60").stdout)
    listed = cli("executions", "--workflow", workflow_id).stdout.splitlines()
    assert listed[0].split() == ["execution", "status", "progress", "started"]
    rows = [line.split() for line in listed[1:]]
    assert {row[0] for row in rows} == {first, second}
    assert all(row[1] == "completed" and row[2] == "100%" for row in rows)

    page_one = cli("executions", "--workflow", workflow_id, "--limit", "1").stdout
    page_two = cli("executions", "--workflow", workflow_id, "--limit", "1", "--page", "2").stdout
    ids = {line.split()[0] for line in (page_one + page_two).splitlines()[1:] if "/run-" in line}
    assert ids == {first, second}
    assert "--page 2" in page_one

    completed = json.loads(
        cli("executions", "--workflow", workflow_id, "--status", "completed", "--json").stdout
    )
    assert {row["execution_id"] for row in completed} == {first, second}
    failed = cli("executions", "--workflow", workflow_id, "--status", "failed")
    assert "no executions" in failed.stdout
    assert cli("executions", "--status", "nonsense", expect=2).returncode == 2


def test_graph_of_a_file_with_its_execution(cli: Cli, definition_file: Path) -> None:
    execution_id = _execution_id(cli("run", str(definition_file), "--timeout", "60").stdout)
    coloured = cli("graph", str(definition_file), "--execution", execution_id).stdout
    assert coloured.count(":::completed") == 3


def test_control_of_an_ended_execution_names_its_state(cli: Cli, definition_file: Path) -> None:
    execution_id = _execution_id(cli("run", str(definition_file), "--timeout", "60").stdout)
    refused = cli("pause", execution_id, expect=1)
    assert "it has ended (completed)" in refused.stderr


def test_status_names_are_spelled_one_way() -> None:
    assert status_name(TemporalStatus.CANCELED) == "cancelled"
    assert status_name(TemporalStatus.TIMED_OUT) == "timed out"
    assert status_name(TemporalStatus.CONTINUED_AS_NEW) == "continued as new"


def test_hook_create_with_no_worker_running(cli: Cli, definition_file: Path) -> None:
    """No worker polls the queue: the command hosts one while the registry checks the
    definition, as `show` does (it failed with WorkerUnavailable before)."""
    workflow_id = _definition(definition_file)["workflow_id"]
    cli("register", str(definition_file))
    created = json.loads(cli("hook", "create", "first-hook", workflow_id, "--json").stdout)
    assert created["hook_id"] == "first-hook"
    assert created["secret"].startswith("whsec_")
    listed = json.loads(cli("hook", "list", "--json").stdout)
    assert [hook["workflow_id"] for hook in listed] == [workflow_id]
    missing = cli("hook", "create", "other-hook", "no-such-workflow", expect=1)
    assert "WorkflowNotFound" in missing.stderr
