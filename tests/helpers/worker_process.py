"""A worker in its own process, for tests that kill workers.

    python -m tests.helpers.worker_process ADDRESS TASK_QUEUE SIDE_EFFECT_DIR

Hosts the engine with the test plugins (tests/helpers/plugins.py); prints "ready" once
polling; drains on SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from engine.connection import connect
from engine.worker import create_worker
from tests.helpers.plugins import test_registry


async def main(address: str, task_queue: str, side_effects: Path) -> None:
    client = await connect(address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = create_worker(
        client,
        task_queue=task_queue,
        plugins=test_registry(side_effects),
        max_cached_workflows=0,
        graceful_shutdown=5.0,
    )
    async with worker:
        print("ready", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
