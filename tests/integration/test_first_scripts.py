"""A new user's first scripts, run as a user runs them: each in a fresh Python process.

* The README's async example exits 0 with an empty stderr, every time: the SDK's native
  threads are shut down before the interpreter finalizes (``engine.hosting.lifetime``), whether the
  script closes its orchestrator or not, and when it dies of an uncaught error.
* The spec's Python example, with only the documented changes, finishes its execution on
  the worker it hosts before it exits (``engine.sync``'s drain), also right after another
  script's worker exited; what cannot finish in time is named on stderr with the command
  that continues it, and that command does.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from engine.hosting.devserver import DevServer
from engine.hosting.embedded import SHUTDOWN_SLACK_SECONDS, worker_is_polling
from engine.hosting.worker import create_worker
from engine.runtime.contracts import EXECUTION_WORKFLOW
from plugins import PluginRegistry
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]

# The spec's "Python Bindings" example (plugin_orchestrator_v2.md), copied literally with
# only the documented changes: `import qtforge` -> `import engine.sync` and the prefix
# `qtforge.orchestration.` -> `engine.sync.`.
SPEC_EXAMPLE = """\
import engine.sync

# Create advanced orchestrator
orchestrator = engine.sync.AdvancedPluginOrchestrator()

# Create workflow with visual nodes
workflow = engine.sync.PluginWorkflow()
workflow.workflow_id = "python_pipeline"
workflow.execution_mode = engine.sync.WorkflowExecutionMode.Streaming

# Add nodes
source_node = engine.sync.WorkflowNode()
source_node.node_id = "source"
source_node.plugin_id = "data_source"
source_node.node_type = engine.sync.WorkflowNodeType.Source

workflow.nodes.append(source_node)

# Register and execute
orchestrator.register_workflow(workflow)
execution_id = orchestrator.execute_workflow("python_pipeline")
"""

# The README's example as it was before close() existed: the orchestrator is never closed.
FORGETFUL_SCRIPT = """\
import asyncio
from engine import AdvancedPluginOrchestrator, PluginWorkflow, WorkflowNode


async def main():
    orch = await AdvancedPluginOrchestrator.connect()
    wf = PluginWorkflow(workflow_id="pipeline")
    wf.nodes = [WorkflowNode(node_id="input", plugin_id="data_source",
                             configuration={"records": [{"name": "ada"}]})]
    await orch.register_workflow(wf)
    execution_id = await orch.execute_workflow("pipeline")
    context = await orch.wait_for_completion(execution_id)
    print(context.status)


asyncio.run(main())
"""

# close() itself, inside the running loop: no SDK thread is left, and the orchestrator says
# it is closed.
CLOSING_SCRIPT = """\
import asyncio, os
from engine import AdvancedPluginOrchestrator, PluginError


def other_threads():
    tasks = [t for t in os.listdir("/proc/self/task") if int(t) != os.getpid()]
    return sorted(open(f"/proc/self/task/{t}/comm").read().strip() for t in tasks)


async def main():
    orch = await AdvancedPluginOrchestrator.connect()
    await orch.get_registered_workflows()
    print("open:", "tokio-rt-worker" in other_threads())
    await orch.close()
    print("closed:", other_threads())
    await orch.close()
    try:
        await orch.get_registered_workflows()
    except PluginError as error:
        print(error)


asyncio.run(main())
"""

# A run that cannot finish within a drain of 0.5 s: its one node is a 3 s durable timer.
UNFINISHED_SCRIPT = """\
import engine.sync

orchestrator = engine.sync.AdvancedPluginOrchestrator(drain_timeout=0.5)
workflow = engine.sync.PluginWorkflow(workflow_id="slow")
workflow.nodes.append(
    engine.sync.WorkflowNode(node_id="pause", plugin_id="wait", configuration={"seconds": 3})
)
orchestrator.register_workflow(workflow)
print(orchestrator.execute_workflow("slow"))
"""


# Runs a script as __main__ and, at the very end of the interpreter's exit (the last atexit
# handler), writes the names of the threads other than the main one to a file.
# A Python thread that was joined can stay listed in /proc for a moment after join()
# returned (its OS thread ends after it released its join lock): the probe looks again for
# up to two seconds. A thread still alive at finalization (the SDK's, held by a module
# global) never ends on its own, so it stays listed whatever the wait.
THREAD_PROBE = """\
import atexit, os, runpy, sys, time

def threads():
    tasks = [t for t in os.listdir("/proc/self/task") if int(t) != os.getpid()]
    names = []
    for task in tasks:
        try:
            names.append(open(f"/proc/self/task/{task}/comm").read().strip())
        except FileNotFoundError:  # ended while listed
            pass
    return names

def report():
    deadline = time.monotonic() + 2
    names = threads()
    while names and time.monotonic() < deadline:
        time.sleep(0.02)
        names = threads()
    with open(sys.argv[2], "w") as out:
        out.write("\\n".join(sorted(names)))

atexit.register(report)
runpy.run_path(sys.argv[1], run_name="__main__")
"""


def readme_example() -> str:
    """The first Python block of the README's "Using it from Python" section."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Using it from Python") :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the README's Python example is missing"
    return match.group(1)


def with_workflow_id(script: str, workflow_id: str) -> str:
    """``script`` registering and running ``workflow_id`` instead of ``"pipeline"`` (so it can
    run again: the registry keeps a definition after the script ends)."""
    assert script.count('"pipeline"') == 2, script
    return script.replace('"pipeline"', f'"{workflow_id}"')


def run_script(
    code: str, tmp_path: Path, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``code`` as a user runs it: ``python script.py`` in a directory of its own."""
    script = tmp_path / f"script-{uuid.uuid4().hex[:8]}.py"
    script.write_text(code)
    return subprocess.run(
        [sys.executable, script.name],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def threads_left_at_exit(
    code: str, tmp_path: Path, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``code`` under :data:`THREAD_PROBE`: its result and the threads still alive when
    the interpreter is about to finalize."""
    script = tmp_path / f"script-{uuid.uuid4().hex[:8]}.py"
    script.write_text(code)
    probe = tmp_path / "probe.py"
    probe.write_text(THREAD_PROBE)
    report = tmp_path / f"threads-{uuid.uuid4().hex[:8]}.txt"
    result = subprocess.run(
        [sys.executable, probe.name, script.name, str(report)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result, report.read_text().split()


def user_env(tmp_path: Path, address: str, task_queue: str) -> dict[str, str]:
    """A user's environment pointing at the session's server and the test's task queue."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TEMPORAL_", "ORCHESTRATOR_"))
    }
    env["PYTHONPATH"] = str(REPO)
    env["ORCHESTRATOR_DATA_DIR"] = str(tmp_path / "data")  # never the user's directory
    env["TEMPORAL_ADDRESS"] = address
    env["TEMPORAL_TASK_QUEUE"] = task_queue
    return env


def outcome(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


async def executions_on(client: Client, task_queue: str) -> list[str]:
    """Ids of the executions on ``task_queue``, once visibility lists at least one."""
    query = f"WorkflowType = '{EXECUTION_WORKFLOW}' AND TaskQueue = '{task_queue}'"
    deadline = time.monotonic() + 30
    while True:
        ids = [execution.id async for execution in client.list_workflows(query)]
        if ids or time.monotonic() > deadline:
            return ids
        await asyncio.sleep(0.1)


async def status_of(client: Client, execution_id: str) -> WorkflowExecutionStatus | None:
    return (await client.get_workflow_handle(execution_id).describe()).status


# -- the README's example ----------------------------------------------------------------


@pytest.mark.timeout(900)  # 20 fresh interpreters on a loaded machine
def test_readme_example_exits_cleanly_20_times(
    dev_server: DevServer, task_queue: str, tmp_path: Path
) -> None:
    example = readme_example()
    env = user_env(tmp_path, dev_server.address, task_queue)
    worker = WorkerProcess(dev_server.address, task_queue, tmp_path)
    try:
        for run in range(20):
            result = run_script(with_workflow_id(example, f"pipeline-{run}"), tmp_path, env)
            assert result.returncode == 0, f"run {run}: {outcome(result)}"
            assert result.stderr == "", f"run {run}: {outcome(result)}"
            assert "completed {'process': {'records': [{'name': 'ada', 'score': 91}]" in (
                result.stdout
            ), f"run {run}: {outcome(result)}"
    finally:
        worker.terminate()


def test_readme_example_dies_of_its_error_without_aborting(
    dev_server: DevServer, task_queue: str, tmp_path: Path
) -> None:
    """Running it again raises WorkflowAlreadyExists: a traceback and exit 1, no abort."""
    example = with_workflow_id(readme_example(), "pipeline")
    env = user_env(tmp_path, dev_server.address, task_queue)
    worker = WorkerProcess(dev_server.address, task_queue, tmp_path)
    try:
        first = run_script(example, tmp_path, env)
        assert first.returncode == 0, outcome(first)
        for run in range(5):
            again = run_script(example, tmp_path, env)
            assert again.returncode == 1, f"run {run}: {outcome(again)}"
            last_line = again.stderr.strip().splitlines()[-1]
            assert last_line == (
                "engine.base.errors.PluginError: WorkflowAlreadyExists: workflow 'pipeline' is "
                "already registered"
            ), f"run {run}: {outcome(again)}"
            assert "Fatal Python error" not in again.stderr, f"run {run}: {outcome(again)}"
    finally:
        worker.terminate()


@pytest.mark.timeout(600)
def test_a_script_that_never_closes_its_orchestrator_exits_cleanly(
    dev_server: DevServer, task_queue: str, tmp_path: Path
) -> None:
    env = user_env(tmp_path, dev_server.address, task_queue)
    worker = WorkerProcess(dev_server.address, task_queue, tmp_path)
    try:
        for run in range(10):
            script = with_workflow_id(FORGETFUL_SCRIPT, f"forgetful-{run}")
            result = run_script(script, tmp_path, env)
            assert result.returncode == 0, f"run {run}: {outcome(result)}"
            assert result.stderr == "", f"run {run}: {outcome(result)}"
            assert result.stdout.strip() == "completed", f"run {run}: {outcome(result)}"
    finally:
        worker.terminate()


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="lists threads in /proc")
def test_no_sdk_thread_is_left_when_the_interpreter_finalizes(
    dev_server: DevServer, task_queue: str, tmp_path: Path
) -> None:
    """What makes the exit safe, checked directly rather than by the odds of the abort:
    when the interpreter starts finalizing, no SDK (Tokio) thread is left that could call
    into it. Closed, never closed, dead of an uncaught error, and the sync facade."""
    env = user_env(tmp_path, dev_server.address, task_queue)
    worker = WorkerProcess(dev_server.address, task_queue, tmp_path)
    try:
        closed, threads = threads_left_at_exit(
            with_workflow_id(readme_example(), "probed"), tmp_path, env
        )
        assert (closed.returncode, threads) == (0, []), outcome(closed)
        unclosed = with_workflow_id(FORGETFUL_SCRIPT, "probed-unclosed")
        forgot, threads = threads_left_at_exit(unclosed, tmp_path, env)
        assert (forgot.returncode, threads) == (0, []), outcome(forgot)
        failed, threads = threads_left_at_exit(unclosed, tmp_path, env)  # already registered
        assert (failed.returncode, threads) == (1, []), outcome(failed)
        assert "WorkflowAlreadyExists" in failed.stderr, outcome(failed)
    finally:
        worker.terminate()
    facade_env = {**env, "TEMPORAL_TASK_QUEUE": f"{task_queue}-sync"}
    facade, threads = threads_left_at_exit(SPEC_EXAMPLE, tmp_path, facade_env)
    assert (facade.returncode, threads) == (0, []), outcome(facade)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="lists threads in /proc")
def test_close_shuts_the_sdk_down_while_the_loop_runs(
    dev_server: DevServer, task_queue: str, tmp_path: Path
) -> None:
    env = user_env(tmp_path, dev_server.address, task_queue)
    result = run_script(CLOSING_SCRIPT, tmp_path, env)
    assert result.returncode == 0, outcome(result)
    assert result.stderr == "", outcome(result)
    assert result.stdout.splitlines() == [
        "open: True",
        "closed: []",
        "InvalidState: this AdvancedPluginOrchestrator is closed; connect a new one",
    ], outcome(result)


# -- the spec's example through engine.sync ----------------------------------------------


async def test_spec_example_finishes_its_execution_with_no_other_worker(
    dev_server: DevServer, client: Client, task_queue: str, tmp_path: Path
) -> None:
    env = user_env(tmp_path, dev_server.address, task_queue)
    result = await asyncio.to_thread(run_script, SPEC_EXAMPLE, tmp_path, env)
    assert result.returncode == 0, outcome(result)
    assert result.stderr == "", outcome(result)
    [execution_id] = await executions_on(client, task_queue)
    assert execution_id.startswith("python_pipeline/run-")
    assert await status_of(client, execution_id) is WorkflowExecutionStatus.COMPLETED


async def test_spec_example_right_after_another_scripts_worker_exited(
    dev_server: DevServer, client: Client, task_queue: str, tmp_path: Path
) -> None:
    """The worker that just exited is still listed among the queue's pollers: it must not
    count, or the example hosts no worker and its first call fails with WorkerUnavailable."""
    worker = WorkerProcess(dev_server.address, task_queue, tmp_path)
    assert await worker_is_polling(client, task_queue)
    assert worker.terminate() == 0
    env = user_env(tmp_path, dev_server.address, task_queue)
    result = await asyncio.to_thread(run_script, SPEC_EXAMPLE, tmp_path, env)
    assert result.returncode == 0, outcome(result)
    assert result.stderr == "", outcome(result)
    [execution_id] = await executions_on(client, task_queue)
    assert await status_of(client, execution_id) is WorkflowExecutionStatus.COMPLETED


async def test_a_worker_that_exited_does_not_count_as_polling(
    client: Client, task_queue: str, registry: PluginRegistry
) -> None:
    identity = f"worker-{uuid.uuid4().hex[:8]}@test"
    async with create_worker(client, task_queue=task_queue, plugins=registry, identity=identity):
        assert await worker_is_polling(client, task_queue)
    # Stopped, yet still listed among the queue's pollers for a minute.
    assert not await worker_is_polling(client, task_queue)
    # A worker of the same identity counts again once it polls after that shutdown (polls
    # within the slack may be the stopped worker's last ones: start it after the slack).
    await asyncio.sleep(SHUTDOWN_SLACK_SECONDS + 0.5)
    async with create_worker(client, task_queue=task_queue, plugins=registry, identity=identity):
        await eventually(lambda: worker_is_polling(client, task_queue), bool, timeout=30)


async def test_what_does_not_finish_is_named_with_the_command_that_continues_it(
    dev_server: DevServer, client: Client, task_queue: str, tmp_path: Path
) -> None:
    env = user_env(tmp_path, dev_server.address, task_queue)
    result = await asyncio.to_thread(run_script, UNFINISHED_SCRIPT, tmp_path, env)
    assert result.returncode == 0, outcome(result)
    execution_id = result.stdout.strip()
    lines = result.stderr.splitlines()
    assert lines[0] == (
        "engine.sync: 1 execution started here did not finish, and this process's worker stops now:"
    ), outcome(result)
    assert lines[1] == f"  {execution_id} (sequential)", outcome(result)
    assert lines[2] == "They continue when a worker polls their task queue; start one with:"
    command = shlex.split(lines[3])
    assert command == [
        "orchestrator",
        "worker",
        "--address",
        dev_server.address,
        "--namespace",
        "default",
        "--task-queue",
        task_queue,
    ], outcome(result)
    assert await status_of(client, execution_id) is WorkflowExecutionStatus.RUNNING
    # The command, as printed, continues it.
    command[0] = str(Path(sys.executable).parent / "orchestrator")
    worker = await asyncio.create_subprocess_exec(
        *command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        handle = client.get_workflow_handle(execution_id)
        await asyncio.wait_for(handle.result(), timeout=60)
    finally:
        worker.terminate()
        _, stderr = await asyncio.wait_for(worker.communicate(), timeout=30)
    assert worker.returncode == 0, stderr.decode()
    assert await status_of(client, execution_id) is WorkflowExecutionStatus.COMPLETED
