"""Run a worker: ``python worker.py`` (settings from TEMPORAL_* environment variables).

The same as ``orchestrator worker``; see ``engine/worker.py`` for what it hosts.
"""

from engine.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["worker"]))
