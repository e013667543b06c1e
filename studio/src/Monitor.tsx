// The monitor: an execution's graph coloured by live node status, from the event stream.

import { Background, Controls, ReactFlow, type Edge } from "@xyflow/react";
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { api, errorText, eventsUrl, executionPath } from "./api";
import { JsonView, StatusBadge, formatDuration, formatTime, usePolling } from "./components";
import { HandleKeeper, Legend, edgeTypes, nodeTypes, toEdges, toNodes, useMeasuredNodes, type PluginFlowNode } from "./graph";
import { DETAIL_LINE, readablePositions } from "./layout";
import { href } from "./router";
import {
  TERMINAL,
  type ExecutionContext,
  type ExecutionView,
  type Json,
  type JsonObject,
  type NodeState,
  type NodeStatus,
  type PluginWorkflow,
  type WorkflowEvent,
} from "./types";

const BATCH_MODES = ["sequential", "parallel", "conditional"];
const NODE_STATUSES: NodeStatus[] = ["pending", "running", "completed", "failed", "skipped", "cancelled"];
type Live = "connecting" | "live" | "reconnecting" | "ended" | "error";

function nodeStatus(state: NodeState | undefined): NodeStatus {
  const status = state?.status;
  return status && (NODE_STATUSES as string[]).includes(status) ? status : "pending";
}

function counterText(counters: JsonObject | undefined): string | undefined {
  if (!counters) return undefined;
  const parts: string[] = [];
  for (const key of ["items_in", "items_out", "batches", "runs", "errors"]) {
    if (typeof counters[key] === "number" && (counters[key] as number) > 0) parts.push(`${key.replace("items_", "")} ${counters[key]}`);
  }
  return parts.length ? parts.join(" · ") : undefined;
}

/** What a node received: the error's recorded input, else its DataFlow sources' results
 * (by target port or source id), else the execution's input for a root node. */
function inputsOf(definition: PluginWorkflow, context: ExecutionContext, nodeId: string): { value: Json | undefined; how: string } {
  const state = context.node_states[nodeId];
  const error = state?.error;
  if (error && typeof error === "object" && !Array.isArray(error) && "input" in error) {
    return { value: error.input, how: "as recorded with the error" };
  }
  const incoming = definition.connections.filter(
    (c) => c.target_node === nodeId && c.connection_type === "data_flow" && c.properties?.on !== "error",
  );
  if (incoming.length === 0) {
    return { value: context.execution_data.input_data ?? {}, how: "the execution's input data" };
  }
  const inputs: JsonObject = {};
  for (const conn of incoming) {
    const source = context.node_states[conn.source_node];
    if (source?.status !== "completed" || !source.result) continue;
    const key = conn.target_port || conn.source_node;
    inputs[key] = conn.source_port ? (source.result[conn.source_port] ?? null) : source.result;
  }
  return { value: inputs, how: "from the upstream results" };
}

export function Monitor({ executionId }: { executionId: string }) {
  const [view, setView] = useState<ExecutionView | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [events, setEvents] = useState<WorkflowEvent[]>([]);
  const [live, setLive] = useState<Live>("connecting");
  const [selected, setSelected] = useState<string | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);
  const [epoch, setEpoch] = useState(0); // a retry starts a new run: follow it from the start
  const [reopen, setReopen] = useState(0); // follow again from the last event seen
  const reopened = useRef(0);
  const lastSequence = useRef(0);
  const [now, setNow] = useState(Date.now());

  const path = executionPath(executionId);
  const inFlight = useRef(false);
  const again = useRef(false);
  const refresh = useCallback(async () => {
    if (inFlight.current) {
      again.current = true;
      return;
    }
    inFlight.current = true;
    try {
      const next = await api<ExecutionView>("GET", `${path}?definition=false`);
      setView((current) => (current ? { ...current, context: next.context, temporal_ui: next.temporal_ui } : current));
    } catch (exc) {
      setActionError(errorText(exc));
    } finally {
      inFlight.current = false;
      if (again.current) {
        again.current = false;
        setTimeout(() => void refresh(), 250); // throttled: at most a few reads a second
      }
    }
  }, [path]);

  useEffect(() => {
    let cancelled = false;
    setView(null);
    setLoadError(null);
    setEvents([]);
    setSelected(null);
    api<ExecutionView>("GET", path).then(
      (loaded) => !cancelled && setView(loaded),
      (exc) => !cancelled && setLoadError(errorText(exc)),
    );
    return () => {
      cancelled = true;
    };
  }, [path]);

  // The live event stream: every event re-reads the context (throttled).
  useEffect(() => {
    setLive("connecting");
    const source = new EventSource(eventsUrl(executionId, lastSequence.current));
    source.onopen = () => setLive("live");
    source.onmessage = (message) => {
      const event = JSON.parse(message.data as string) as WorkflowEvent;
      lastSequence.current = Math.max(lastSequence.current, event.sequence);
      setEvents((current) =>
        current.some((e) => e.sequence === event.sequence) ? current : [...current, event].slice(-300),
      );
      void refresh();
    };
    source.addEventListener("end", () => {
      source.close();
      setLive("ended");
      void refresh();
    });
    source.addEventListener("stream-error", (message) => {
      source.close();
      setLive("error");
      setActionError(`event stream: ${(JSON.parse((message as MessageEvent).data as string) as { message: string }).message}`);
    });
    source.onerror = () => setLive(source.readyState === EventSource.CLOSED ? "error" : "reconnecting");
    return () => source.close();
  }, [executionId, epoch, reopen, refresh]);

  const status = view?.context.status;
  // The context (read on every event and every few seconds) is the truth: when it says the
  // execution ended, or the stream failed, and the stream has not ended, follow it again
  // from the last event seen (a few times at most).
  useEffect(() => {
    const ended = status !== undefined && TERMINAL.includes(status);
    if (live === "ended" || reopened.current >= 5 || !(live === "error" || ended)) return;
    const timer = setTimeout(() => {
      reopened.current += 1;
      setReopen((n) => n + 1);
    }, live === "error" ? 3000 : 2000);
    return () => clearTimeout(timer);
  }, [status, live, reopen]);
  const active = status !== undefined && !TERMINAL.includes(status);
  usePolling(() => void refresh(), 4000, active); // a safety net under the stream
  usePolling(() => setNow(Date.now()), 1000, active);

  const act = async (action: string, body: unknown = {}) => {
    setBusy(action);
    setActionError(null);
    try {
      await api("POST", `${path}/${action}`, body);
      if (action === "retry" || action.endsWith("/skip")) {
        if (status && TERMINAL.includes(status)) {
          setEvents([]);
          lastSequence.current = 0;
          reopened.current = 0;
          setEpoch((e) => e + 1);
        }
      }
      await refresh();
    } catch (exc) {
      setActionError(errorText(exc));
    } finally {
      setBusy(null);
    }
  };

  const definition = view?.definition;
  const context = view?.context;
  // Laid out once per definition, not on every tick of the clock below; nodes here carry a
  // line of detail (duration, counters).
  const positions = useMemo(() => (definition ? readablePositions(definition, DETAIL_LINE) : {}), [definition]);
  const nodes = useMemo(() => {
    if (!definition || !context) return [];
    return toNodes(
      definition,
      (node) => {
        const state = context.node_states[node.node_id];
        const s = nodeStatus(state);
        const detail =
          counterText(state?.counters as JsonObject | undefined) ??
          (state?.started_at && (s === "running" || s === "completed" || s === "failed")
            ? formatDuration(state.started_at, s === "running" ? null : state.completed_at, now)
            : undefined);
        return { status: s, attempts: state?.attempts, detail };
      },
      selected,
      positions,
    );
  }, [definition, context, selected, now, positions]);
  const [measuredNodes, onNodesChange] = useMeasuredNodes(nodes);
  const edges: Edge[] = useMemo(() => {
    if (!definition || !context) return [];
    const running = new Set(
      Object.entries(context.node_states)
        .filter(([, s]) => s.status === "running")
        .map(([id]) => id),
    );
    return toEdges(definition, { animateInto: running });
  }, [definition, context]);

  if (loadError) {
    return (
      <div className="page">
        <div className="error-box" data-testid="monitor-error">{loadError}</div>
      </div>
    );
  }
  if (!view || !context || !definition) return <div className="page muted">Loading execution…</div>;

  const counts = NODE_STATUSES.map((s) => [s, definition.nodes.filter((n) => nodeStatus(context.node_states[n.node_id]) === s).length] as const);
  const selectedNode = selected ? definition.nodes.find((n) => n.node_id === selected) : undefined;
  const mode = definition.execution_mode;
  const progress = Math.round((context.progress ?? 0) * 100);

  return (
    <div className="monitor">
      <div className="toolbar monitor-header">
        <a className="crumb" href={href("executions")}>Executions</a>
        <span className="crumb-sep">/</span>
        <strong className="mono" data-testid="execution-id">{executionId}</strong>
        <StatusBadge status={context.status} testId="execution-status" />
        <span className={`live live-${live}`} data-testid="live-indicator" data-state={live} title="event stream">
          {live === "live" ? "● live" : live === "ended" ? "stream ended" : live === "connecting" ? "connecting…" : live === "reconnecting" ? "reconnecting…" : "stream error"}
        </span>
        <span className="spacer" />
        {(status === "running" || status === "pending") && (
          <button onClick={() => act("pause")} disabled={busy !== null} data-testid="pause-button">
            ❚❚ Pause
          </button>
        )}
        {status === "paused" && (
          <button className="primary" onClick={() => act("resume")} disabled={busy !== null} data-testid="resume-button">
            ▶ Resume
          </button>
        )}
        {active && (
          <button className="danger" onClick={() => act("cancel")} disabled={busy !== null} data-testid="cancel-button">
            ■ Cancel
          </button>
        )}
        {(status === "failed" || status === "cancelled") && BATCH_MODES.includes(mode) && (
          <button className="primary" onClick={() => act("retry")} disabled={busy !== null} data-testid="retry-button">
            ↻ Retry
          </button>
        )}
        {view.temporal_ui && (
          <a className="button-link" href={view.temporal_ui} target="_blank" rel="noreferrer" data-testid="temporal-ui-link">
            Temporal UI ↗
          </a>
        )}
      </div>
      <div className="monitor-summary">
        <div className="progress" data-testid="progress-bar" data-progress={context.progress}>
          <div className={`progress-fill progress-${context.status}`} style={{ width: `${progress}%` }} />
          <span className="progress-text">{progress}%</span>
        </div>
        <div className="summary-facts">
          <span>
            definition <a href={href("workflows", definition.workflow_id)}>{definition.workflow_id}</a> v
            {String(context.execution_data.workflow_version ?? definition.version)}
          </span>
          <span>{mode}</span>
          <span>started {formatTime(context.start_time)}</span>
          <span>
            {context.end_time ? "took" : "running for"} {formatDuration(context.start_time, context.end_time, now)}
          </span>
          <span className="counts">
            {counts
              .filter(([, n]) => n > 0)
              .map(([s, n]) => (
                <span key={s} className={`count count-${s}`} data-testid={`count-${s}`}>
                  {n} {s}
                </span>
              ))}
          </span>
        </div>
        {actionError && <div className="error-box small" data-testid="action-error">{actionError}</div>}
        {context.error_messages.length > 0 && (
          <ul className="error-messages" data-testid="error-messages">
            {context.error_messages.map((m, i) => (
              <li key={i}>{m}</li>
            ))}
          </ul>
        )}
      </div>
      <div className="monitor-body">
        <div className="canvas" data-testid="monitor-canvas">
          <ReactFlow<PluginFlowNode, Edge>
            nodes={measuredNodes}
            edges={edges}
            nodeTypes={nodeTypes}
            edgeTypes={edgeTypes}
            onNodesChange={onNodesChange}
            nodesDraggable={false}
            nodesConnectable={false}
            edgesFocusable={false}
            onNodeClick={(_, node) => setSelected(node.id)}
            onPaneClick={() => setSelected(null)}
            fitView
            fitViewOptions={{ padding: 0.06, maxZoom: 1.1 }}
            minZoom={0.2}
            proOptions={{ hideAttribution: true }}
          >
            <Background gap={20} color="#e2e8f0" />
            <Controls showInteractive={false} />
            <HandleKeeper />
          </ReactFlow>
        </div>
        <aside className="inspector" data-testid="node-details">
          {selectedNode ? (
            <NodeDetails
              definition={definition}
              context={context}
              nodeId={selectedNode.node_id}
              busy={busy !== null}
              now={now}
              onApprove={(approved) => act(`nodes/${encodeURIComponent(selectedNode.node_id)}/approve`, { approved, by: "studio" })}
              onSkip={(output) => act(`nodes/${encodeURIComponent(selectedNode.node_id)}/skip`, { output })}
            />
          ) : (
            <div className="inspector-hint">
              <h4>Nodes</h4>
              <p className="help">Select a node for its timings, attempts, input, result or error.</p>
              <ul className="node-list">
                {definition.nodes.map((n) => (
                  <li key={n.node_id} onClick={() => setSelected(n.node_id)}>
                    <span className={`dot dot-${nodeStatus(context.node_states[n.node_id])}`} /> {n.node_id}
                    <span className="muted small"> {nodeStatus(context.node_states[n.node_id])}</span>
                  </li>
                ))}
              </ul>
              {context.execution_data.results !== undefined && (
                <>
                  <h5>Results</h5>
                  <JsonView value={context.execution_data.results} testId="execution-results" />
                </>
              )}
            </div>
          )}
        </aside>
      </div>
      <Legend statuses />
      <details className="event-log" open>
        <summary>
          Events <span className="muted small">({events.length})</span>
        </summary>
        <ol data-testid="event-log">
          {events
            .slice()
            .reverse()
            .slice(0, 100)
            .map((e) => (
              <li key={e.sequence} data-testid={`event-${e.sequence}`} data-type={e.type}>
                <span className="mono muted">#{e.sequence}</span> <span className="mono muted">{formatTime(e.timestamp)}</span>{" "}
                <span className={`event-type event-${e.type}`}>{e.type}</span>
                {e.node_id && <span className="mono"> {e.node_id}</span>}
                {e.error && <span className="event-error"> {e.error}</span>}
                {typeof e.progress === "number" && <span className="muted"> {Math.round(e.progress * 100)}%</span>}
              </li>
            ))}
        </ol>
      </details>
    </div>
  );
}

function NodeDetails({
  definition,
  context,
  nodeId,
  busy,
  now,
  onApprove,
  onSkip,
}: {
  definition: PluginWorkflow;
  context: ExecutionContext;
  nodeId: string;
  busy: boolean;
  now: number;
  onApprove: (approved: boolean) => void;
  onSkip: (output: JsonObject) => void;
}) {
  const node = definition.nodes.find((n) => n.node_id === nodeId);
  const state = context.node_states[nodeId];
  const status = nodeStatus(state);
  const [skipText, setSkipText] = useState("{}");
  if (!node) return null;
  const inputs = inputsOf(definition, context, nodeId);
  const ended = TERMINAL.includes(context.status);
  const canSkip = (status === "running" && !ended) || (status === "failed" && context.status === "failed");
  return (
    <div className="inspector-panel" data-testid={`node-details-${nodeId}`}>
      <h4>
        <code>{node.node_id}</code> <StatusBadge status={status} testId="node-details-status" />
      </h4>
      <dl className="facts">
        <dt>plugin</dt>
        <dd>{node.plugin_id}</dd>
        <dt>type</dt>
        <dd>{node.node_type}</dd>
        <dt>attempts</dt>
        <dd data-testid="node-attempts">{state?.attempts ?? 0}</dd>
        <dt>started</dt>
        <dd>{formatTime(state?.started_at)}</dd>
        <dt>completed</dt>
        <dd>{formatTime(state?.completed_at)}</dd>
        <dt>duration</dt>
        <dd>{state?.started_at ? formatDuration(state.started_at, status === "running" ? null : state.completed_at, now) : "—"}</dd>
        {state?.handled && (
          <>
            <dt>handled</dt>
            <dd>by an error route</dd>
          </>
        )}
        {state?.child_execution_id && (
          <>
            <dt>child</dt>
            <dd>
              <a href={href("executions", String(state.child_execution_id))}>{String(state.child_execution_id)}</a>
            </dd>
          </>
        )}
      </dl>
      {node.plugin_id === "approval" && status === "running" && !ended && (
        <div className="button-row">
          <button className="primary" disabled={busy} onClick={() => onApprove(true)} data-testid="approve-button">
            Approve
          </button>
          <button className="danger" disabled={busy} onClick={() => onApprove(false)} data-testid="reject-button">
            Reject
          </button>
        </div>
      )}
      {state?.counters && (
        <>
          <h5>Counters</h5>
          <JsonView value={state.counters} testId="node-counters" />
        </>
      )}
      {state?.error !== undefined && (
        <>
          <h5 className="bad">Error</h5>
          <JsonView value={state.error} testId="node-error" />
        </>
      )}
      {state?.last_error !== undefined && (
        <>
          <h5 className="bad">Last failed attempt</h5>
          <JsonView value={state.last_error} />
        </>
      )}
      {state?.result !== undefined && (
        <>
          <h5>Result</h5>
          <JsonView value={state.result} testId="node-result" />
        </>
      )}
      <h5>
        Input <span className="muted small">({inputs.how})</span>
      </h5>
      <JsonView value={inputs.value} testId="node-input" />
      <h5>Configuration</h5>
      <JsonView value={node.configuration} />
      {canSkip && (
        <details>
          <summary className="small">Skip this node with an output…</summary>
          <textarea className="json-input" rows={3} value={skipText} onChange={(e) => setSkipText(e.target.value)} data-testid="skip-output" />
          <button
            disabled={busy}
            data-testid="skip-button"
            onClick={() => {
              try {
                onSkip(JSON.parse(skipText || "{}") as JsonObject);
              } catch {
                /* not JSON: nothing sent */
              }
            }}
          >
            Skip node
          </button>
        </details>
      )}
    </div>
  );
}
