"""One scenario's world: a server, a task queue of its own, a ledger, worker processes and
proxies, and the faults injected into them. Tests and the soak script build one per
scenario; :meth:`Harness.close` kills whatever is left."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from temporalio.client import WorkflowHistory

from engine import AdvancedPluginOrchestrator
from engine.hosting.connection import connect
from engine.hosting.devserver import DevServer
from tests.chaos.invariants import Expected, check_runs, server_problems
from tests.chaos.ledger import Effect, Ledger
from tests.chaos.long_invariants import LongExpected, check_long_runs
from tests.chaos.proxy import TcpProxy
from tests.chaos.replay import SeededReplayers
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import eventually

REGISTRY = "tests.chaos.plugins:chaos_registry"
# Dynamic config of a server on which a stream continues as new every few seconds.
SHORT_HISTORY = {"limit.historyCount.suggestContinueAsNew": 40}
T = TypeVar("T")


class Harness:
    """Args:
    server: The server the scenario runs on; only scenarios that say so restart it.
    directory: Holds the ledger, worker logs and histories.
    name: Part of the task queue's name and of every definition id (unique per harness).
    short_history: The server suggests continue-as-new after a few dozen history events
        (:data:`SHORT_HISTORY`), so long-running executions cross runs within seconds.
    """

    def __init__(
        self, server: DevServer, directory: Path, name: str, *, short_history: bool = False
    ) -> None:
        self.server = server
        self.short_history = short_history
        self.directory = directory
        self.suffix = uuid.uuid4().hex[:8]
        self.task_queue = f"chaos-{name}-{self.suffix}"
        self.ledger = Ledger.in_directory(directory)
        self.workers: list[WorkerProcess] = []
        self.proxies: list[TcpProxy] = []
        self.faults: Counter[str] = Counter()
        self.anomalies: list[str] = []  # scenario-specific findings
        self.extra_histories: list[WorkflowHistory] = []  # e.g. a registry entity's
        self.statuses: Counter[str] = Counter()  # how the checked runs ended
        self._orchestrator: AdvancedPluginOrchestrator | None = None

    def unique(self, name: str) -> str:
        return f"{name}-{self.suffix}"

    @property
    def orchestrator(self) -> AdvancedPluginOrchestrator:
        assert self._orchestrator is not None, "call connect() first"
        return self._orchestrator

    async def connect(self) -> AdvancedPluginOrchestrator:
        client = await connect(self.server.address)
        self._orchestrator = AdvancedPluginOrchestrator(
            client, task_queue=self.task_queue, query_timeout=5.0
        )
        return self._orchestrator

    # -- processes and faults ------------------------------------------------------------

    async def workers_up(
        self, count: int = 1, *, standby: int = 0, address: str | None = None, **options: Any
    ) -> list[WorkerProcess]:
        """Start ``count`` polling workers and ``standby`` warm idle ones, all at once."""
        starts = [
            asyncio.to_thread(
                WorkerProcess,
                address or self.server.address,
                self.task_queue,
                self.directory,
                registry=REGISTRY,
                standby=i >= count,
                **options,
            )
            for i in range(count + standby)
        ]
        started = list(await asyncio.gather(*starts, return_exceptions=True))
        for worker in started:
            if isinstance(worker, WorkerProcess):
                self.workers.append(worker)
        for worker in started:
            if isinstance(worker, BaseException):
                raise worker
        return started  # type: ignore[return-value]

    async def go(self, worker: WorkerProcess) -> None:
        await asyncio.to_thread(worker.go)

    def kill(self, worker: WorkerProcess, during: str = "") -> None:
        """SIGKILL ``worker``; ``during`` names the phase it hit (counted apart)."""
        worker.kill()
        self.faults[f"worker SIGKILL ({during})" if during else "worker SIGKILL"] += 1

    async def terminate(self, worker: WorkerProcess) -> int:
        self.faults["worker SIGTERM"] += 1
        return await asyncio.to_thread(worker.terminate, 30)

    async def proxy(self) -> TcpProxy:
        proxy = await TcpProxy(self.server.address).start()
        self.proxies.append(proxy)
        return proxy

    async def restart_server(self, down: float = 1.0) -> None:
        """SIGKILL the server, leave it down ``down`` seconds, start it on the same file."""
        self.server.kill()
        self.faults["server SIGKILL"] += 1
        await asyncio.sleep(down)
        await asyncio.to_thread(self.server.start)

    async def close(self) -> None:
        for worker in self.workers:
            worker.kill()
        for proxy in self.proxies:
            await proxy.close()

    # -- observing -----------------------------------------------------------------------

    async def effects(self, execution_id: str | None = None) -> list[Effect]:
        return await asyncio.to_thread(self.ledger.effects, execution_id)

    async def until_effect(
        self, execution_id: str, node_id: str, phase: str, attempt: int = 1, timeout: float = 30
    ) -> Effect:
        """Wait for a ledger row; returns it."""

        async def find() -> list[Effect]:
            return [
                e
                for e in await self.effects(execution_id)
                if (e.node_id, e.phase, e.attempt) == (node_id, phase, attempt)
            ]

        return (await eventually(find, bool, timeout=timeout, interval=0.05))[0]

    def expect(self, condition: bool, anomaly: str) -> None:
        """A scenario-specific check: recorded, not raised, so the soak counts it."""
        if not condition:
            self.anomalies.append(anomaly)

    async def verdict(
        self,
        expected: dict[str, Expected | LongExpected],
        replayers: SeededReplayers,
        timeout: float = 90,
    ) -> list[str]:
        """Every anomaly: the scenario's own, the invariant's, and failed replays."""
        client = self.orchestrator.client
        batch = {k: v for k, v in expected.items() if isinstance(v, Expected)}
        long = {k: v for k, v in expected.items() if isinstance(v, LongExpected)}
        verdict = await check_runs(client, self.ledger, batch, timeout)
        long_verdict = await check_long_runs(client, self.ledger, long, timeout)
        verdict.anomalies += long_verdict.anomalies
        verdict.histories += long_verdict.histories
        self.statuses = verdict.statuses + long_verdict.statuses
        on_server = await server_problems(client, self.task_queue, list(expected))
        histories = verdict.histories + self.extra_histories
        path = self.directory / f"histories-{self.suffix}.json"
        replay_failures = await replayers.replay(histories, path)
        replayed = [f"replay: {failure}" for failure in replay_failures]
        return self.anomalies + verdict.anomalies + on_server + replayed


async def timed(awaitable: Awaitable[T]) -> tuple[T, float]:
    """The awaitable's result and how long it took (seconds)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    result = await awaitable
    return result, loop.time() - start


async def run_scenario(
    harness: Harness,
    replayers: SeededReplayers,
    scenario: Callable[..., Awaitable[dict[str, Any]]],
    seed: int,
    **options: Any,
) -> list[str]:
    """Run ``scenario`` with its fault timings drawn from ``seed``, then check the invariant
    and replay every history; returns the anomalies (none expected)."""
    expected = await scenario(harness, random.Random(seed), **options)
    return await harness.verdict(expected, replayers)
