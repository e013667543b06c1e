"""``python -m engine.cli``: the same as the ``orchestrator`` command."""

from engine.cli import main

raise SystemExit(main())
