"""The pure runtime: the scheduler, the interpreter of batch runs, map running, the event log,
long-running (EventDriven and Streaming) runs, and the contracts (payload shapes) between the
workflow, its activities and clients. Deterministic asyncio with an injected runner and
clock: it tests without a server."""
