#!/usr/bin/env python3
"""Is a worker in this container polling its task queue? Exit 0 if so, 1 if not.

A worker has no port to probe, and a live process is not the same as a working worker: it
may have lost Temporal, or be stuck draining. This asks Temporal instead. Every worker polls
with the identity ``<pid>@<hostname>`` (the SDK's default, which ``orchestrator worker``
keeps), and a container has a hostname of its own, so a poller on the task queue whose
identity ends with ``@<this hostname>`` is this container's worker.

Settings are the worker's own (``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``,
``TEMPORAL_TASK_QUEUE``, the API key and TLS variables; see ``engine/hosting/connection.py``).
The image installs it as ``orchestrator-worker-healthcheck``; Compose runs it as the
worker's health check. It needs Temporal to answer, so while Temporal is down every worker
reports unhealthy: use it to see the state of the fleet, not to restart workers
(Kubernetes runs no such probe on workers; see deploy/kubernetes/README.md).
"""

from __future__ import annotations

import asyncio
import gc
import socket
import sys
from datetime import timedelta

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from engine.hosting.connection import connect, default_task_queue

TIMEOUT = timedelta(seconds=5)
QUEUE_TYPES = (
    TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
)


async def pollers(task_queue: str) -> set[str]:
    """Identities polling ``task_queue`` for workflow or activity tasks."""
    client = await connect()
    identities: set[str] = set()
    for queue_type in QUEUE_TYPES:
        response = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=task_queue),
                task_queue_type=queue_type,
            ),
            timeout=TIMEOUT,
        )
        identities.update(poller.identity for poller in response.pollers)
    return identities


def main() -> int:
    task_queue = default_task_queue()
    suffix = f"@{socket.gethostname()}"
    try:
        identities = asyncio.run(asyncio.wait_for(pollers(task_queue), 15))
    except Exception as exc:  # any failure to ask is "not healthy", with the reason
        print(f"unhealthy: cannot describe task queue {task_queue!r}: {exc}", file=sys.stderr)
        return 1
    finally:
        # A traceback's reference cycle keeps the native client alive until interpreter
        # shutdown, where freeing it aborts the process (engine/hosting/lifetime.py explains it).
        gc.collect()
    mine = sorted(identity for identity in identities if identity.endswith(suffix))
    if not mine:
        print(f"unhealthy: no worker of this host ({suffix}) polls {task_queue!r}", file=sys.stderr)
        return 1
    print(f"healthy: {', '.join(mine)} polling {task_queue!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
