"""The ledger: every side effect of the chaos plugins, in a SQLite file shared by the test
and its worker processes (WAL, so several workers write while the checker reads).

``effects`` has one row per phase of a plugin attempt (``started``, ``failed``, ``done``);
``applied`` holds the effects a plugin deduplicates by its idempotency key (run id +
activity id), written at most once however often the node is attempted. ``handled`` holds
one row per (item, handler) of the long-running scenarios: which EventDriven pass (its
idempotency key) or which stream sink write took each source item; ``written`` counts every
write of an item, duplicates included.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS effects (
    execution_id TEXT NOT NULL, node_id TEXT NOT NULL, attempt INTEGER NOT NULL,
    phase TEXT NOT NULL, pid INTEGER NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS applied (
    key TEXT PRIMARY KEY, execution_id TEXT NOT NULL, node_id TEXT NOT NULL,
    attempt INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS handled (
    execution_id TEXT NOT NULL, item INTEGER NOT NULL, handler TEXT NOT NULL,
    PRIMARY KEY (execution_id, item, handler));
CREATE TABLE IF NOT EXISTS written (execution_id TEXT NOT NULL, item INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class Effect:
    execution_id: str
    node_id: str
    attempt: int
    phase: str
    pid: int
    at: float


class Ledger:
    """One ledger file; every call opens its own connection (threads and processes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @classmethod
    def in_directory(cls, directory: Path) -> Ledger:
        return cls(directory / "ledger.sqlite")

    def _connect(self) -> contextlib.closing[sqlite3.Connection]:
        # Autocommit, and a generous busy timeout: three workers and 200 runs write at once.
        return contextlib.closing(sqlite3.connect(self.path, timeout=60, isolation_level=None))

    def record(self, execution_id: str, node_id: str, attempt: int, phase: str) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO effects VALUES (?, ?, ?, ?, ?, ?)",
                (execution_id, node_id, attempt, phase, os.getpid(), time.time()),
            )

    def apply_once(self, key: str, execution_id: str, node_id: str, attempt: int) -> bool:
        """The deduplicated effect; False if this key was applied before."""
        with self._connect() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO applied VALUES (?, ?, ?, ?)",
                (key, execution_id, node_id, attempt),
            )
            return cursor.rowcount == 1

    def effects(self, execution_id: str | None = None) -> list[Effect]:
        query = "SELECT * FROM effects"
        args: tuple[str, ...] = ()
        if execution_id is not None:
            query, args = query + " WHERE execution_id = ?", (execution_id,)
        with self._connect() as db:
            return [Effect(*row) for row in db.execute(query + " ORDER BY rowid", args)]

    def applied(self, execution_id: str) -> dict[str, int]:
        """Deduplicated effects per node of one execution."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT node_id, COUNT(*) FROM applied WHERE execution_id = ? GROUP BY node_id",
                (execution_id,),
            )
            return dict(rows)

    def handle_items(self, execution_id: str, items: list[int], handler: str) -> None:
        """Items taken by ``handler`` (idempotent per item and handler), each write counted."""
        with self._connect() as db:
            db.executemany(
                "INSERT OR IGNORE INTO handled VALUES (?, ?, ?)",
                [(execution_id, item, handler) for item in items],
            )
            db.executemany(
                "INSERT INTO written VALUES (?, ?)", [(execution_id, item) for item in items]
            )

    def handlers(self, execution_id: str) -> dict[int, int]:
        """How many distinct handlers took each item of one execution."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT item, COUNT(*) FROM handled WHERE execution_id = ? GROUP BY item",
                (execution_id,),
            )
            return dict(rows)

    def writes(self, execution_id: str) -> int:
        """Every write of an item of one execution, duplicates included."""
        with self._connect() as db:
            (count,) = db.execute(
                "SELECT COUNT(*) FROM written WHERE execution_id = ?", (execution_id,)
            ).fetchone()
            return int(count)

    def count(self, node_id: str, phase: str, execution_id: str | None = None) -> int:
        return sum(
            1 for e in self.effects(execution_id) if e.node_id == node_id and e.phase == phase
        )
