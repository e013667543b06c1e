"""The CLI's parser answers without loading the engine, and agrees with the engine on the
choices it lists (they are spelled out there so that `--help` stays light)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from engine.cli.parser import GRAPH_FORMATS, OVERLAP_POLICIES, STATUS_FILTERS, build_parser
from engine.client.execution_list import STATUS_FILTERS as ENGINE_STATUS_FILTERS
from engine.client.schedules import OVERLAP_POLICIES as ENGINE_OVERLAP_POLICIES
from engine.language.graph_view import FORMATS

REPO = Path(__file__).resolve().parents[2]


def test_the_parser_lists_the_engines_choices() -> None:
    assert GRAPH_FORMATS == FORMATS
    assert STATUS_FILTERS == ENGINE_STATUS_FILTERS
    assert tuple(ENGINE_OVERLAP_POLICIES) == OVERLAP_POLICIES


def test_schedule_actions_name_loadable_handlers() -> None:
    import importlib

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    schedule = subparsers.choices["schedule"]  # type: ignore[attr-defined]
    actions = next(a for a in schedule._actions if a.dest == "schedule_command")
    assert sorted(actions.choices) == sorted(
        ["create", "list", "show", "pause", "resume", "trigger", "backfill", "delete"]
    )
    for sub in actions.choices.values():
        module, _, function = sub.get_default("handler").partition(":")
        assert callable(getattr(importlib.import_module(f"engine.cli.{module}"), function))


def test_every_command_names_a_loadable_handler() -> None:
    import importlib

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    for name, sub in subparsers.choices.items():  # type: ignore[attr-defined]
        handler = sub.get_default("handler")
        if handler is None:  # `server`: its actions have the handlers
            actions = next(a for a in sub._actions if a.dest == "server_command")
            handlers = [s.get_default("handler") for s in actions.choices.values()]
        else:
            handlers = [handler]
        for spec in handlers:
            module, _, function = spec.partition(":")
            command = getattr(importlib.import_module(f"engine.cli.{module}"), function)
            assert callable(command), (name, spec)


def test_help_loads_no_engine_module_beyond_the_parser() -> None:
    code = (
        "import io, json, sys, contextlib\n"
        "from engine.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['--help']) == 0\n"
        "    assert main(['status', '--help']) == 0\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('engine', 'temporalio', 'pydantic', 'rich', 'plugins', 'activities'))))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    loaded = json.loads(result.stdout)
    assert loaded == [
        "engine",
        "engine.base",
        "engine.base.errors",
        "engine.cli",
        "engine.cli.errors",
        "engine.cli.parser",
    ]
