"""Replay every recorded history; exit 1 on the first failure.

    PYTHONHASHSEED=1 python -m tests.replay.replay_all

Used by the replay tests to replay under several hash seeds, in fresh processes.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from engine.temporal.admission import PluginAdmission
from engine.temporal.registry import PluginCatalog, PluginWorkflowDefinition
from engine.temporal.sandbox import workflow_runner
from engine.temporal.workflow import PluginWorkflowExecution

HISTORIES = Path(__file__).parent / "histories"


def load_histories() -> list[WorkflowHistory]:
    histories = []
    for path in sorted(HISTORIES.glob("*.json")):
        data = json.loads(path.read_text())
        histories.append(WorkflowHistory.from_json(path.stem, data))
    return histories


def replayer() -> Replayer:
    """A replayer configured exactly like the workers."""
    return Replayer(
        workflows=[
            PluginWorkflowExecution,
            PluginWorkflowDefinition,
            PluginAdmission,
            PluginCatalog,
        ],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )


async def main() -> int:
    histories = load_histories()
    for history in histories:
        await replayer().replay_workflow(history)
    print(f"replayed {len(histories)} histories")
    return 0


if __name__ == "__main__":
    code = asyncio.run(main())
    # The SDK's runtime threads can crash the interpreter while it finalizes (seen as
    # SIGSEGV after every history replayed); release them first, then leave without the
    # finalization that races with them.
    gc.collect()
    sys.stdout.flush()
    os._exit(code)
