"""The workflow sandbox's configuration, shared by workers and every replayer (replay only
reproduces a run when both load the workflow code the same way)."""

from __future__ import annotations

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

# Imported once per worker, not once per workflow run. The engine's own modules must be
# among them: the interpreter and the payload models must be the same classes inside and
# outside the sandbox. None of them keeps mutable module state, and the sandbox's runtime
# checks (clock, randomness, I/O) still apply to passed-through code.
PASSTHROUGH_MODULES = (
    "engine",
    "pydantic",
    "pydantic_core",
    "celpy",
    "lark",
    "re2",
    "google",
    "structlog",
    # The tracing interceptor's workflow side (the SDK's docs ask for it to pass through).
    "opentelemetry",
)


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox configuration of workers and of the replayer (they must match)."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    )
