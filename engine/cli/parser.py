"""The ``orchestrator`` argument parser. It imports nothing of the engine: each command's
handler is named as ``module:function`` of :mod:`engine.cli` and loaded only when that
command runs, so ``--help`` and a mistyped command answer at once."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ENV_STUDIO_TOKEN = "ORCHESTRATOR_STUDIO_TOKEN"
# The same as engine.language.graph_view.FORMATS and engine.client.execution_list.STATUS_FILTERS
# (a test checks): those modules load the rendering and the Temporal client.
GRAPH_FORMATS = ("mermaid", "dot")
STATUS_FILTERS = (
    "pending",
    "queued",
    "running",
    "paused",
    "completed",
    "failed",
    "cancelled",
    "terminated",
)
# The same as engine.client.schedules.OVERLAP_POLICIES (a test checks).
OVERLAP_POLICIES = (
    "skip",
    "buffer_one",
    "buffer_all",
    "cancel_other",
    "terminate_other",
    "allow_all",
)


def _global_options(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: options may come before or after the subcommand; _fill_defaults adds the rest.
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--address",
        default=argparse.SUPPRESS,
        help="Temporal host:port (default TEMPORAL_ADDRESS, else 127.0.0.1:7233, started "
        "embedded if nothing listens there)",
    )
    group.add_argument(
        "--namespace",
        default=argparse.SUPPRESS,
        help="Temporal namespace (default TEMPORAL_NAMESPACE or 'default')",
    )
    group.add_argument(
        "--task-queue",
        default=argparse.SUPPRESS,
        help="task queue of executions and workers (default TEMPORAL_TASK_QUEUE or "
        "'plugin-orchestrator')",
    )
    group.add_argument(
        "--data-dir",
        type=Path,
        default=argparse.SUPPRESS,
        help="data directory of the embedded server and of webhooks (default "
        "ORCHESTRATOR_DATA_DIR or ~/.local/share/plugin-orchestrator)",
    )
    group.add_argument(
        "--ui-url",
        default=argparse.SUPPRESS,
        help="Temporal web UI base URL for links (default TEMPORAL_UI_URL; known for the "
        "embedded server)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``orchestrator`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="Durable graph workflows on Temporal (AdvancedPluginOrchestrator v2).",
    )
    _global_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, handler: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _global_options(sub)
        sub.set_defaults(handler=handler)
        return sub

    sub = command(
        "validate",
        "definitions:cmd_validate",
        "check a definition file: its structure, and its plugins and configurations against "
        "the plugins installed here (no server needed)",
    )
    sub.add_argument("file", help="JSON definition file")
    sub.add_argument(
        "--structure-only",
        action="store_true",
        help="check the structure only, not plugin ids and configurations",
    )

    sub = command("register", "definitions:cmd_register", "register a definition file")
    sub.add_argument("file", help="JSON definition file")
    sub.add_argument(
        "--replace", action="store_true", help="update the definition if already registered"
    )

    sub = command("unregister", "definitions:cmd_unregister", "remove a registered definition")
    sub.add_argument("workflow_id")

    sub = command("show", "definitions:cmd_show", "print a registered definition as JSON")
    sub.add_argument("workflow_id")

    command("list", "definitions:cmd_list", "list registered workflow ids")
    sub = command(
        "executions",
        "runs:cmd_executions",
        "list executions, active and ended, newest first",
    )
    sub.add_argument("--workflow", metavar="ID", help="only executions of this definition")
    sub.add_argument("--status", choices=STATUS_FILTERS, help="only executions in this status")
    sub.add_argument("--active", action="store_true", help="only running and paused ones")
    sub.add_argument("--limit", type=int, default=20, help="rows per page (20)")
    sub.add_argument("--page", type=int, default=1, help="page number, from 1")
    sub.add_argument("--json", action="store_true", help="print JSON rows")

    sub = command(
        "run",
        "runs:cmd_run",
        "run a registered workflow, or a definition file (registered or updated first)",
    )
    sub.add_argument("workflow", metavar="ID_OR_FILE")
    source = sub.add_mutually_exclusive_group()
    source.add_argument("--input", help="input data as a JSON object")
    source.add_argument("--input-file", help="file holding the input data (a JSON object)")
    sub.add_argument(
        "--follow",
        action="store_true",
        help="draw the graph live (on a terminal; elsewhere print events as they happen)",
    )
    sub.add_argument(
        "--detach",
        action="store_true",
        help="print the execution id and return (needs a running worker)",
    )
    sub.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds to wait for the end (default: no limit)",
    )

    sub = command("status", "runs:cmd_status", "show an execution's graph and state")
    sub.add_argument("execution_id")
    view = sub.add_mutually_exclusive_group()
    view.add_argument("--json", action="store_true", help="print the context as JSON")
    view.add_argument("--watch", action="store_true", help="redraw live until the execution ends")

    sub = command(
        "graph",
        "definitions:cmd_graph",
        "print a definition's graph as Mermaid or Graphviz DOT (nodes coloured by status "
        "with --execution)",
    )
    sub.add_argument("workflow", metavar="ID_OR_FILE", nargs="?", default=None)
    sub.add_argument("--format", choices=GRAPH_FORMATS, default="mermaid")
    sub.add_argument("--execution", help="colour the nodes by this execution's node states")

    for name, handler, help_text in (
        ("pause", "runs:cmd_pause", "pause an execution (running nodes finish)"),
        ("resume", "runs:cmd_resume", "resume a paused execution"),
        ("cancel", "runs:cmd_cancel", "cancel an execution"),
    ):
        sub = command(name, handler, help_text)
        sub.add_argument("execution_id")

    sub = command(
        "blobs-gc",
        "hosting:cmd_blobs_gc",
        "remove the large-output blobs of executions that have ended",
    )
    sub.add_argument(
        "--older-than-days", type=float, default=7.0, help="keep blobs newer than this"
    )

    sub = command("retry", "runs:cmd_retry", "run a failed execution again from its failed node")
    sub.add_argument("execution_id")

    sub = command("skip", "runs:cmd_skip", "complete a node with a given output")
    sub.add_argument("execution_id")
    sub.add_argument("node_id")
    sub.add_argument("--output", default="{}", help="the node's output, a JSON object")

    sub = command("approve", "runs:cmd_approve", "decide for a node waiting in approval")
    sub.add_argument("execution_id")
    sub.add_argument("node_id", help="the node (node#pass in an EventDriven execution)")
    sub.add_argument("--reject", action="store_true", help="reject instead of approving")
    sub.add_argument("--by", default=os.environ.get("USER", ""), help="who decides")
    sub.add_argument("--comment", default="")
    sub.add_argument("--data", default="{}", help="a JSON object handed to the next nodes")

    sub = command("plugins", "definitions:cmd_plugins", "list the plugins workers offer")
    sub.add_argument("--json", action="store_true", help="print the catalog as JSON")

    sub = command("send-event", "runs:cmd_send_event", "send an event to an EventDriven execution")
    sub.add_argument("execution_id")
    sub.add_argument("event_type")
    sub.add_argument("--payload", default="{}", help="the event as a JSON object")
    sub.add_argument("--event-id", default=None, help="deduplication id (default: a new one)")
    sub.add_argument("--source", default=None, help="the Source node it comes from")

    sub = command("events", "runs:cmd_events", "print an execution's events until it ends")
    sub.add_argument("execution_id")
    sub.add_argument("--after", type=int, default=0, help="start after this sequence number")
    sub.add_argument(
        "--json", action="store_true", help="print each event as a JSON line (with its result)"
    )

    sub = command("worker", "hosting:cmd_worker", "run a worker until SIGTERM or SIGINT")
    sub.add_argument("--max-concurrent-activities", type=int, default=100)
    sub.add_argument(
        "--graceful-shutdown",
        type=float,
        default=30.0,
        help="seconds running nodes get to finish on shutdown",
    )
    sub.add_argument(
        "--metrics-bind",
        default=None,
        metavar="HOST:PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics "
        "(default: ORCHESTRATOR_METRICS_BIND, else none)",
    )

    sub = command(
        "studio",
        "hosting:cmd_studio",
        "serve the studio: design definitions and watch executions live in a browser",
    )
    sub.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    sub.add_argument("--port", type=int, default=8080, help="port (8080; 0: a free one)")
    sub.add_argument(
        "--token-file",
        type=Path,
        default=None,
        metavar="PATH",
        help=f"read the bearer token clients must send from PATH (default: {ENV_STUDIO_TOKEN});"
        " at least 16 characters; required to bind beyond localhost",
    )
    sub.add_argument(
        "--token",
        default=None,
        help=f"the token itself: discouraged, any user can read it in ps; prefer "
        f"{ENV_STUDIO_TOKEN} or --token-file",
    )
    sub.add_argument(
        "--no-worker",
        action="store_true",
        help="on the embedded server, do not run nodes in this process when no worker polls",
    )

    sub = command(
        "serve",
        "hosting:cmd_serve",
        "serve only the webhook receiver (POST /hooks/<hook id>): no API, no UI, no token "
        "needed (every request is checked against its hook's signature)",
    )
    sub.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    sub.add_argument("--port", type=int, default=8090, help="port (8090; 0: a free one)")
    sub.add_argument(
        "--no-worker",
        action="store_true",
        help="on the embedded server, do not run nodes in this process when no worker polls",
    )

    _hook_commands(commands)
    schedule = command(
        "schedule", "parser:cmd_usage", "run a definition on a cron expression or an interval"
    )
    schedule.set_defaults(usage=schedule.format_help())
    schedule_commands = schedule.add_subparsers(dest="schedule_command", metavar="ACTION")

    def schedule_command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = schedule_commands.add_parser(name, help=help_text, description=help_text)
        _global_options(sub)
        sub.set_defaults(handler=f"schedules:cmd_{name}")
        if name not in ("create", "list"):
            sub.add_argument("schedule_id")
        return sub

    sub = schedule_command("create", "create a schedule of a registered definition")
    sub.add_argument("workflow_id")
    when = sub.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help="cron expression, e.g. '0 6 * * 1-5' or '@daily'")
    when.add_argument("--every", metavar="DURATION", help="interval: 30, 30s, 5m, 2h, 1d")
    source = sub.add_mutually_exclusive_group()
    source.add_argument("--input", help="input data of every run, a JSON object")
    source.add_argument("--input-file", help="file holding the input data (a JSON object)")
    sub.add_argument(
        "--overlap",
        choices=OVERLAP_POLICIES,
        default="skip",
        help="when a run is due while the last one runs (default skip)",
    )
    sub.add_argument("--catchup-window", metavar="DURATION", help="how late a missed run may start")
    sub.add_argument("--jitter", metavar="DURATION", help="start each run up to this late")
    sub.add_argument("--time-zone", help="IANA time zone of --cron (default UTC)")
    sub.add_argument("--id", help="the schedule's id (default <workflow_id>-<8 hex>)")
    sub.add_argument("--paused", action="store_true", help="create it paused")
    sub.add_argument("--note", help="why it is paused")

    sub = schedule_command("list", "list the schedules of this task queue")
    sub.add_argument("--workflow", metavar="ID", help="only schedules of this definition")
    sub.add_argument("--json", action="store_true", help="print JSON rows")

    sub = schedule_command("show", "show a schedule with its next and recent runs")
    sub.add_argument("--json", action="store_true", help="print the schedule as JSON")

    for name, help_text in (
        ("pause", "start no run until resumed"),
        ("resume", "resume a paused schedule"),
    ):
        sub = schedule_command(name, help_text)
        sub.add_argument("--note", help="why (shown with the schedule)")

    sub = schedule_command("trigger", "start a run now (also while paused)")
    sub.add_argument("--overlap", choices=OVERLAP_POLICIES, help="instead of the schedule's")

    sub = schedule_command("backfill", "take the runs due in a past time range")
    sub.add_argument("--start", required=True, help="ISO 8601 time (UTC unless an offset)")
    sub.add_argument("--end", required=True, help="ISO 8601 time (UTC unless an offset)")
    sub.add_argument("--overlap", choices=OVERLAP_POLICIES, help="instead of the schedule's")

    schedule_command("delete", "delete a schedule (runs it started go on)")

    server = command("server", "parser:cmd_usage", "manage the embedded Temporal server")
    server.set_defaults(usage=server.format_help())
    server_commands = server.add_subparsers(dest="server_command", metavar="ACTION")
    for name, action, help_text in (
        ("start", "hosting:cmd_server_start", "start it in the background"),
        ("stop", "hosting:cmd_server_stop", "stop it"),
        ("status", "hosting:cmd_server_status", "show whether it runs"),
    ):
        sub = server_commands.add_parser(name, help=help_text, description=help_text)
        _global_options(sub)
        sub.set_defaults(handler=action)
        if name == "start":
            sub.add_argument(
                "--port",
                type=int,
                default=None,
                help="gRPC port (default ORCHESTRATOR_EMBEDDED_PORT, else 7233)",
            )
            sub.add_argument(
                "--ui-port",
                type=int,
                default=None,
                help="web UI port (default ORCHESTRATOR_EMBEDDED_UI_PORT, else 8233; 0: none)",
            )
    return parser


def _hook_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    help_text = "manage webhooks (served by the studio and by 'orchestrator serve')"
    hook = commands.add_parser("hook", help=help_text, description=help_text)
    _global_options(hook)
    hook.set_defaults(handler="parser:cmd_usage", usage=hook.format_help())
    actions = hook.add_subparsers(dest="hook_command", metavar="ACTION")

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text, description=help_text)
        _global_options(sub)
        sub.set_defaults(handler=f"hooks:cmd_hook_{name}")
        return sub

    sub = action(
        "create",
        "create a hook that starts executions of a workflow (or, with --execution, sends "
        "events to a running EventDriven execution); prints its secret once",
    )
    sub.add_argument("hook_id")
    sub.add_argument("workflow_id")
    sub.add_argument("--execution", metavar="ID", help="send events to this execution")
    sub.add_argument("--event-type", default=None, help="type of the events sent (webhook)")
    sub.add_argument("--source", default=None, help="the Source node events come from")
    sub.add_argument(
        "--idempotency-field",
        default=None,
        metavar="FIELD",
        help="body field holding the idempotency key when no Idempotency-Key header is sent",
    )
    sub.add_argument("--max-body-bytes", type=int, default=None, help="largest body (256 KiB)")
    sub.add_argument("--rate-per-minute", type=int, default=None, help="requests a minute (60)")
    sub.add_argument(
        "--tolerance", type=int, default=None, help="signature timestamp window, seconds (300)"
    )
    sub.add_argument("--json", action="store_true", help="print the id and secret as JSON")

    sub = action("list", "list the hooks (without their secrets)")
    sub.add_argument("--json", action="store_true", help="print JSON")

    sub = action("delete", "delete a hook (its URL answers 404 from then on)")
    sub.add_argument("hook_id")

    sub = action("rotate", "give a hook a new secret; prints it once")
    sub.add_argument("hook_id")
    sub.add_argument(
        "--grace",
        type=float,
        default=0.0,
        help="seconds the old secret is still accepted (0: none; at most 7 days)",
    )
    sub.add_argument("--json", action="store_true", help="print the id and secret as JSON")


def cmd_usage(args: argparse.Namespace) -> int:
    print(args.usage, file=sys.stderr, end="")
    return 2
