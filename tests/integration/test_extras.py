"""A core install without the optional extras: everything starts, and what needs a missing
extra says which one. Each check runs in a fresh interpreter that refuses to import the
extras' packages, as a machine without them would."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# What the extras install (studio, otlp, s3, sql, redis, nats, mqtt, kafka).
EXTRA_PACKAGES = (
    "fastapi",
    "uvicorn",
    "starlette",
    "opentelemetry.exporter.otlp",
    "boto3",
    "sqlalchemy",
    "psycopg",
    "redis",
    "nats",
    "paho",
    "aiokafka",
)

BLOCKER = textwrap.dedent(
    f"""
    import importlib.abc, sys
    BLOCKED = {EXTRA_PACKAGES!r}
    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if any(name == p or name.startswith(p + ".") for p in BLOCKED):
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None
    sys.meta_path.insert(0, Blocker())
    """
)


def _run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "ORCHESTRATOR_"))}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_the_builtins_load_and_name_the_missing_extra() -> None:
    result = _run(
        """
        import asyncio, json
        from engine.temporal.catalog import describe_plugins
        from engine.base.errors import PluginError
        from plugins import PluginRegistry
        from plugins._context import PluginContext

        registry = PluginRegistry.default()
        infos = {info.plugin_id: info for info in describe_plugins(registry)}
        ctx = PluginContext(execution_id="e", workflow_id="w", node_id="n", plugin_id="p",
                             attempt=1, idempotency_key="k")
        errors = {}
        try:
            registry.get("database_writer").function({}, {}, ctx)
        except PluginError as exc:
            errors["database_writer"] = [exc.code.value, exc.message]
        for source in ("redis_stream_source", "nats_jetstream_source", "mqtt_subscriber",
                       "kafka_consumer"):
            spec = next(s for s in registry.sources() if s.plugin_id == source)
            try:
                asyncio.run(spec.open({}, None, ctx))
            except PluginError as exc:
                errors[source] = [exc.code.value, exc.message]
        print(json.dumps({"ids": sorted(infos), "errors": errors,
                          "schema": infos["data_processor"].config_schema is not None}))
        """
    )
    assert result.returncode == 0, result.stderr
    import json

    printed = json.loads(result.stdout)
    assert {"database_writer", "redis_stream_source", "data_processor"} <= set(printed["ids"])
    assert printed["schema"]
    for plugin_id, extra in [
        ("database_writer", "sql"),
        ("redis_stream_source", "redis"),
        ("nats_jetstream_source", "nats"),
        ("mqtt_subscriber", "mqtt"),
        ("kafka_consumer", "kafka"),
    ]:
        code, message = printed["errors"][plugin_id]
        assert code == "InvalidConfiguration"
        assert f"pip install 'plugin-orchestrator[{extra}]'" in message, message
        assert f"plugin '{plugin_id}'" in message


def test_the_studio_command_names_its_extra(tmp_path: Path) -> None:
    result = _run(
        """
        import runpy, sys
        sys.argv = ["orchestrator", "--address", "127.0.0.1:9", "studio"]
        runpy.run_module("engine.cli", run_name="__main__")
        """
    )
    assert result.returncode != 0
    assert "pip install 'plugin-orchestrator[studio]'" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_the_worker_and_client_modules_import_without_extras() -> None:
    result = _run(
        """
        import engine, engine.hosting.worker, engine.sync, engine.cli, worker
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
