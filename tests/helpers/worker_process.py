"""A worker in its own process, for tests that kill workers.

    python -m tests.helpers.worker_process ADDRESS TASK_QUEUE SIDE_EFFECT_DIR
        [--registry MODULE:FUNCTION] [--standby] [--graceful-shutdown SECONDS]
        [--max-cached-workflows N]

Hosts the engine with the plugins ``FUNCTION(SIDE_EFFECT_DIR)`` returns (default: the test
plugins of tests/helpers/plugins.py), by default with the workflow cache off (every task
replays the history); prints "ready" once polling; drains on SIGTERM. With ``--standby``
it imports everything, prints "standby" and waits for a line on stdin before it connects:
a replacement worker that is already warm (imports take seconds) when a test kills the one
before it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from engine.hosting import lifetime
from engine.hosting.connection import connect
from engine.hosting.worker import create_worker
from plugins import PluginRegistry

DEFAULT_REGISTRY = "tests.helpers.plugins:test_registry"


def load_registry(spec: str, side_effects: Path) -> PluginRegistry:
    module, _, name = spec.partition(":")
    factory: Callable[[Path], PluginRegistry] = getattr(importlib.import_module(module), name)
    return factory(side_effects)


async def main(arguments: argparse.Namespace) -> None:
    registry = load_registry(arguments.registry, Path(arguments.side_effects))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if arguments.standby:
        print("standby", flush=True)
        go = loop.run_in_executor(None, sys.stdin.readline)
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({go, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            return  # stopped while on standby (the parent closes stdin, ending the read)
        stopping.cancel()
    # A runtime of its own, released before the interpreter finalizes, as `orchestrator
    # worker` does (engine.hosting.lifetime): on the SDK's default runtime its threads could
    # race finalization and abort the process (exit -6) after a clean drain.
    key, runtime = lifetime.new_runtime()
    try:
        client = await connect(arguments.address, runtime=runtime)
        del runtime
        worker = create_worker(
            client,
            task_queue=arguments.task_queue,
            plugins=registry,
            max_cached_workflows=arguments.max_cached_workflows,
            graceful_shutdown=arguments.graceful_shutdown,
        )
        async with worker:
            print("ready", flush=True)
            await stop.wait()
        del worker, client
    finally:
        lifetime.release_runtime(key)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("task_queue")
    parser.add_argument("side_effects")
    parser.add_argument("--registry", default=DEFAULT_REGISTRY)
    parser.add_argument("--standby", action="store_true")
    parser.add_argument("--graceful-shutdown", type=float, default=5.0)
    parser.add_argument("--max-cached-workflows", type=int, default=0)
    asyncio.run(main(parser.parse_args()))
