"""Run a worker: ``python worker.py [--task-queue Q ...]`` (defaults from TEMPORAL_* variables).

The same as ``orchestrator worker``; see ``engine/hosting/worker.py`` for what it hosts.
"""

import sys

from engine.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["worker", *sys.argv[1:]]))
