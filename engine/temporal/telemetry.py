"""Observability: OpenTelemetry tracing, Prometheus metrics and Temporal search attributes.

Everything is configured from the environment and off unless asked for (no exporter, no
interceptor, no metrics endpoint: no overhead):

``ORCHESTRATOR_TRACING``  ``otlp``, ``console`` or ``off``. Unset: ``otlp`` when
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set, else
    ``off``. ``OTEL_SDK_DISABLED=true`` turns tracing off whatever else is set.
``OTEL_EXPORTER_OTLP_ENDPOINT`` and the other standard ``OTEL_EXPORTER_OTLP_*`` variables
    configure the OTLP exporter (HTTP/protobuf, default ``http://localhost:4318``).
``OTEL_SERVICE_NAME``  service name of the spans (default ``plugin-orchestrator``).
``ORCHESTRATOR_METRICS_BIND``  ``host:port`` of a worker's Prometheus endpoint
    (``http://host:port/metrics``); unset: no endpoint.
``ORCHESTRATOR_SEARCH_ATTRIBUTES``  ``auto`` (default), ``on`` or ``off``: whether executions
    set the ``OrchestratorWorkflowId`` and ``OrchestratorStatus`` search attributes. ``auto``
    asks the server once per client whether both are registered (the embedded dev server
    registers them); ``on`` requires them (a start fails on a server without them).

Tracing uses the SDK's :class:`temporalio.contrib.opentelemetry.TracingInterceptor` on the
client (workers inherit it): the client's ``StartWorkflow`` span is the root of one trace per
execution, with the workflow's spans and one ``RunActivity`` span per node attempt under it;
the node activity adds the ``orchestrator.*`` attributes to that span
(:func:`start_node_attempt`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import structlog
from temporalio.common import (
    MetricMeter,
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
)

from engine.base.errors import PluginError, PluginErrorCode
from engine.base.extras import require_extra

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span
    from temporalio.client import Client
    from temporalio.client import Interceptor as ClientInterceptor
    from temporalio.runtime import Runtime

log = structlog.get_logger("engine.temporal.telemetry")

SERVICE_NAME = "plugin-orchestrator"
TRACER_NAME = "plugin-orchestrator"

# -- search attributes -------------------------------------------------------------------

WORKFLOW_ID_ATTRIBUTE = SearchAttributeKey.for_keyword("OrchestratorWorkflowId")
STATUS_ATTRIBUTE = SearchAttributeKey.for_keyword("OrchestratorStatus")
SEARCH_ATTRIBUTE_KEYS = (WORKFLOW_ID_ATTRIBUTE, STATUS_ATTRIBUTE)
# As ``temporal operator search-attribute create`` and ``start-dev --search-attribute`` take them.
SEARCH_ATTRIBUTE_DEFINITIONS = tuple(f"{key.name}=Keyword" for key in SEARCH_ATTRIBUTE_KEYS)

# Registry entities and catalogs carry Temporal's system search attribute
# TemporalNamespaceDivision, which keeps them out of every visibility query that does not
# name it: Temporal UI's and `temporal workflow list`'s default lists show executions only
# (Temporal hides its own schedules' workflows the same way). Always available: no
# registration needed, on any server.
NAMESPACE_DIVISION = SearchAttributeKey.for_keyword("TemporalNamespaceDivision")
ENTITY_DIVISION = "plugin-orchestrator"
# A query clause that lists entities with and without it (those started before it was set).
ENTITY_DIVISION_CLAUSE = (
    f"({NAMESPACE_DIVISION.name} = '{ENTITY_DIVISION}' OR {NAMESPACE_DIVISION.name} IS NULL)"
)

SearchAttributesMode = Literal["auto", "on", "off"]
_available: dict[tuple[str, str], bool] = {}


def search_attributes_mode() -> SearchAttributesMode:
    """``ORCHESTRATOR_SEARCH_ATTRIBUTES``: ``auto`` (default), ``on`` or ``off``."""
    value = (os.environ.get("ORCHESTRATOR_SEARCH_ATTRIBUTES") or "auto").strip().lower()
    if value in ("auto", ""):
        return "auto"
    if value in ("on", "true", "1", "yes"):
        return "on"
    if value in ("off", "false", "0", "no"):
        return "off"
    raise PluginError(
        PluginErrorCode.InvalidConfiguration,
        f"ORCHESTRATOR_SEARCH_ATTRIBUTES must be auto, on or off, not '{value}'",
    )


async def search_attributes_enabled(client: Client) -> bool:
    """Whether executions started by ``client`` set the engine's search attributes.

    In ``auto`` mode the answer (are both attributes registered as Keyword in the client's
    namespace?) is asked once per server address and namespace, and cached; an error
    (e.g. no permission to list them) counts as "no".
    """
    mode = search_attributes_mode()
    if mode == "off":
        return False
    key = (client.service_client.config.target_host, client.namespace)
    if key not in _available:
        _available[key] = await _registered(client)
    if mode == "on" and not _available[key]:
        # Refuse before starting anything: the server would reject the start with a message
        # naming only one attribute, and an operator wants the command that fixes it.
        _available.pop(key)  # ask again next time: someone may register them meanwhile
        names = ", ".join(attribute.name for attribute in SEARCH_ATTRIBUTE_KEYS)
        raise PluginError(
            PluginErrorCode.InvalidConfiguration,
            f"ORCHESTRATOR_SEARCH_ATTRIBUTES=on but the search attributes {names} are not "
            f"all registered as Keyword in namespace '{client.namespace}'; register them "
            "with `temporal operator search-attribute create --name NAME --type Keyword` "
            "(deploy/README.md) or set ORCHESTRATOR_SEARCH_ATTRIBUTES=auto",
        )
    return _available[key]


async def _registered(client: Client) -> bool:
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

    try:
        response = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
    except Exception as exc:
        log.warning(
            "cannot list search attributes; executions will not set them",
            namespace=client.namespace,
            error=str(exc),
        )
        return False
    custom = dict(response.custom_attributes)
    missing = [
        key.name
        for key in SEARCH_ATTRIBUTE_KEYS
        if custom.get(key.name) != IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
    ]
    if missing:
        log.info(
            "search attributes not registered; executions will not set them",
            namespace=client.namespace,
            missing=missing,
        )
    return not missing


def entity_search_attributes() -> TypedSearchAttributes:
    """What registry entities and catalogs start with (see ``NAMESPACE_DIVISION``)."""
    return TypedSearchAttributes([SearchAttributePair(NAMESPACE_DIVISION, ENTITY_DIVISION)])


def start_search_attributes(workflow_id: str) -> TypedSearchAttributes:
    """The values an execution starts with (set by the start request, no workflow command)."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(WORKFLOW_ID_ATTRIBUTE, workflow_id),
            SearchAttributePair(STATUS_ATTRIBUTE, "running"),
        ]
    )


# -- tracing -----------------------------------------------------------------------------

TracingMode = Literal["otlp", "console", "off"]


@dataclass
class _Tracing:
    configured: bool = False
    provider: TracerProvider | None = None


_tracing = _Tracing()


def tracing_mode() -> TracingMode:
    """The exporter the environment asks for (see the module docstring)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return "off"
    value = (os.environ.get("ORCHESTRATOR_TRACING") or "").strip().lower()
    if not value:
        endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
        )
        return "otlp" if endpoint else "off"
    if value == "otlp":
        return "otlp"
    if value == "console":
        return "console"
    if value in ("off", "none", "false", "0", "no"):
        return "off"
    raise PluginError(
        PluginErrorCode.InvalidConfiguration,
        f"ORCHESTRATOR_TRACING must be otlp, console or off, not '{value}'",
    )


def configure_tracing(
    provider: TracerProvider | None = None, *, set_global: bool = True
) -> TracerProvider | None:
    """Set up this process's tracing once; return its provider (None when tracing is off).

    Args:
        provider: Use this provider (tests pass one with an ``InMemorySpanExporter``)
            instead of building one from the environment.
        set_global: Also make it OpenTelemetry's global provider (if none is set yet), so
            spans plugins create with ``opentelemetry.trace.get_tracer`` nest under their
            node's span.
    """
    if provider is None:
        if _tracing.configured:
            return _tracing.provider
        provider = _provider_from_env()
    _tracing.configured = True
    _tracing.provider = provider
    if provider is not None and set_global:
        from opentelemetry import trace

        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            trace.set_tracer_provider(provider)
    return provider


def _provider_from_env() -> TracerProvider | None:
    mode = tracing_mode()
    if mode == "off":
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    if mode == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
    else:
        exporter = require_extra(
            "opentelemetry.exporter.otlp.proto.http.trace_exporter",
            "otlp",
            "tracing to an OTLP collector (ORCHESTRATOR_TRACING=otlp)",
        )
        provider.add_span_processor(BatchSpanProcessor(exporter.OTLPSpanExporter()))
    log.info("tracing enabled", exporter=mode, service=resource.attributes.get("service.name"))
    return provider


def tracing_interceptor(provider: TracerProvider | None = None) -> ClientInterceptor | None:
    """The SDK's tracing interceptor for ``provider`` (default: :func:`configure_tracing`'s);
    None when tracing is off."""
    provider = provider or configure_tracing()
    if provider is None:
        return None
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return TracingInterceptor(provider.get_tracer(TRACER_NAME))


def client_interceptors() -> list[ClientInterceptor]:
    """Interceptors every client of this process gets (workers inherit them)."""
    interceptor = tracing_interceptor()
    return [interceptor] if interceptor is not None else []


# -- metrics -----------------------------------------------------------------------------

NODE_DURATION_METRIC = "orchestrator_node_duration_seconds"
NODE_OUTCOMES_METRIC = "orchestrator_node_outcomes_total"
# Plugin calls take from milliseconds to hours.
_DURATION_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
)
_runtimes: dict[str, Runtime] = {}


def metrics_bind_address(bind: str | None = None) -> str | None:
    """``bind``, else ``ORCHESTRATOR_METRICS_BIND``; None (no endpoint) when neither is set."""
    value = bind or os.environ.get("ORCHESTRATOR_METRICS_BIND") or ""
    return value.strip() or None


def metrics_runtime(bind: str) -> Runtime:
    """A Temporal runtime serving Prometheus metrics on ``http://<bind>/metrics``: the SDK's
    own (``temporal_*``) and the engine's node metrics. One per address and process; give it
    to :func:`engine.hosting.connection.connect` before creating the worker's client."""
    runtime = _runtimes.get(bind)
    if runtime is None:
        from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

        try:
            runtime = Runtime(
                telemetry=TelemetryConfig(
                    metrics=PrometheusConfig(
                        bind_address=bind,
                        histogram_bucket_overrides={NODE_DURATION_METRIC: _DURATION_BUCKETS},
                    )
                )
            )
        except Exception as exc:
            raise PluginError(
                PluginErrorCode.InvalidConfiguration,
                f"cannot serve Prometheus metrics on '{bind}': {exc}",
            ) from exc
        _runtimes[bind] = runtime
    return runtime


# -- one node attempt --------------------------------------------------------------------

Outcome = Literal["completed", "failed", "cancelled"]


@dataclass
class NodeAttempt:
    """Span attributes and metrics of one node attempt, inside the node activity."""

    workflow_id: str
    execution_id: str
    node_id: str
    plugin_id: str
    attempt: int
    span: Span
    started: float = field(default_factory=time.monotonic)

    def finish(
        self, meter: MetricMeter, outcome: Outcome, error: BaseException | None = None
    ) -> None:
        """Record the outcome on the span and in the metrics (never raises: observing must
        not change what the node did)."""
        try:
            self._finish(meter, outcome, error)
        except Exception as exc:
            log.warning("cannot record the node attempt's telemetry", error=repr(exc))

    def _finish(self, meter: MetricMeter, outcome: Outcome, error: BaseException | None) -> None:
        seconds = time.monotonic() - self.started
        if self.span.is_recording():
            from opentelemetry.trace import Status, StatusCode

            self.span.set_attribute("orchestrator.outcome", outcome)
            if outcome == "failed":
                description = f"{type(error).__name__}: {error}" if error else "failed"
                self.span.set_status(Status(StatusCode.ERROR, description))
        if meter is MetricMeter.noop:  # the runtime has no metrics configured
            return
        labels: dict[str, str | int | float | bool] = {
            "workflow_id": self.workflow_id,
            "node_id": self.node_id,
            "plugin_id": self.plugin_id,
            "outcome": outcome,
        }
        meter.create_histogram_float(
            NODE_DURATION_METRIC, "Duration of node attempts (plugin calls)", "s"
        ).with_additional_attributes(labels).record(seconds)
        meter.create_counter(
            NODE_OUTCOMES_METRIC, "Node attempts by outcome"
        ).with_additional_attributes(labels).add(1)


def start_node_attempt(
    *, workflow_id: str, execution_id: str, node_id: str, plugin_id: str, attempt: int
) -> NodeAttempt:
    """Put the node's attributes on the current span (the SDK's ``RunActivity`` span when
    tracing is on; a no-op span otherwise) and start timing the attempt."""
    from opentelemetry import trace

    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(
            {
                "orchestrator.workflow_id": workflow_id,
                "orchestrator.execution_id": execution_id,
                "orchestrator.node_id": node_id,
                "orchestrator.plugin_id": plugin_id,
                "orchestrator.attempt": attempt,
            }
        )
    return NodeAttempt(workflow_id, execution_id, node_id, plugin_id, attempt, span)


@contextlib.contextmanager
def observed_node_attempt(
    meter: MetricMeter,
    *,
    workflow_id: str,
    execution_id: str,
    node_id: str,
    plugin_id: str,
    attempt: int,
) -> Iterator[None]:
    """:func:`start_node_attempt` for the block, finished with its outcome: completed when
    the block ends, cancelled on ``asyncio.CancelledError``, failed on any other error."""
    started = start_node_attempt(
        workflow_id=workflow_id,
        execution_id=execution_id,
        node_id=node_id,
        plugin_id=plugin_id,
        attempt=attempt,
    )
    outcome: Outcome = "failed"
    error: BaseException | None = None
    try:
        yield
        outcome = "completed"
    except asyncio.CancelledError:
        outcome = "cancelled"
        raise
    except Exception as exc:
        error = exc
        raise
    finally:
        started.finish(meter, outcome, error)
