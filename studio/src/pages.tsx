// Lists: definitions, one definition's graph, executions (active and recent).

import { Background, Controls, ReactFlow, type Edge } from "@xyflow/react";
import { useCallback, useEffect, useMemo, useState } from "react";
import { api, errorText, workflowPath } from "./api";
import {
  ConfirmUnregister,
  RunDialog,
  StatusBadge,
  downloadJson,
  formatDuration,
  formatTime,
  normalizeWorkflow,
  usePolling,
} from "./components";
import { HandleKeeper, Legend, edgeTypes, nodeTypes, toEdges, toNodes, useMeasuredNodes, type PluginFlowNode } from "./graph";
import { href, navigate } from "./router";
import { DefinitionSchedules } from "./Schedules";
import type { ExecutionRow, PluginWorkflow, WorkflowSummary } from "./types";

const STATUS_FILTERS = ["", "running", "paused", "pending", "queued", "completed", "failed", "cancelled", "terminated"];

/** Whether a definition's row matches a search: its id or its name contains the text, in any case. */
function matches(row: WorkflowSummary, needle: string): boolean {
  return row.workflow_id.toLowerCase().includes(needle) || (row.name ?? "").toLowerCase().includes(needle);
}

export function DefinitionsPage() {
  const [rows, setRows] = useState<WorkflowSummary[] | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [run, setRun] = useState<string | null>(null);
  const [query, setQuery] = useState("");
  const [confirming, setConfirming] = useState<string | null>(null);
  // The outcome of the last unregister: the list is reloaded either way.
  const [outcome, setOutcome] = useState<{ ok: boolean; text: string } | null>(null);
  const load = useCallback(() => {
    api<WorkflowSummary[]>("GET", "/api/workflows").then(
      (r) => {
        setRows(r);
        setLoadError(null);
      },
      (exc) => setLoadError(errorText(exc)),
    );
  }, []);
  useEffect(load, [load]);
  const unregister = async (workflowId: string) => {
    setConfirming(null);
    try {
      await api("DELETE", workflowPath(workflowId));
      setOutcome({ ok: true, text: `Unregistered ${workflowId}.` });
    } catch (exc) {
      setOutcome({ ok: false, text: `Cannot unregister ${workflowId}: ${errorText(exc)}` });
    }
    load();
  };
  const needle = query.trim().toLowerCase();
  const shown = rows && needle ? rows.filter((row) => matches(row, needle)) : rows;
  return (
    <div className="page">
      <div className="page-header">
        <h2>Definitions</h2>
        {rows !== null && rows.length > 0 && (
          <div className="search">
            <input
              type="text"
              value={query}
              placeholder="Search by id or name"
              aria-label="Search definitions by id or name"
              data-testid="definitions-search"
              onChange={(e) => setQuery(e.target.value)}
              onKeyDown={(e) => e.key === "Escape" && setQuery("")}
            />
            {query && (
              <button className="icon-button" onClick={() => setQuery("")} aria-label="clear the search" data-testid="definitions-search-clear">
                ×
              </button>
            )}
          </div>
        )}
        {needle && shown && rows && (
          <span className="muted small" data-testid="definitions-count">
            {shown.length} of {rows.length}
          </span>
        )}
        <span className="spacer" />
        <button onClick={load}>Refresh</button>
        <a className="button-link primary" href={href("designer")} data-testid="new-definition-button">
          + New definition
        </a>
      </div>
      {loadError && <div className="error-box">{loadError}</div>}
      {outcome &&
        (outcome.ok ? (
          <div className="notice ok" data-testid="definitions-notice">
            {outcome.text}
          </div>
        ) : (
          <div className="error-box" data-testid="definitions-error">
            {outcome.text}
          </div>
        ))}
      {rows === null || shown === null ? (
        <p className="muted">Loading…</p>
      ) : rows.length === 0 ? (
        <div className="empty">
          <p>No definitions are registered on this task queue yet.</p>
          <a className="button-link primary" href={href("designer")}>
            Design the first one
          </a>
        </div>
      ) : shown.length === 0 ? (
        <p className="muted" data-testid="definitions-no-match">
          No definition's id or name contains “{query.trim()}”.
        </p>
      ) : (
        <table className="table" data-testid="definitions-table">
          <thead>
            <tr>
              <th>Workflow id</th>
              <th>Name</th>
              <th>Mode</th>
              <th>Version</th>
              <th>Nodes</th>
              <th>Connections</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {shown.map((row) => (
              <tr key={row.workflow_id} data-testid={`definition-row-${row.workflow_id}`}>
                <td>
                  <a href={href("workflows", row.workflow_id)} data-testid={`open-definition-${row.workflow_id}`}>
                    {row.workflow_id}
                  </a>
                </td>
                <td>{row.error ? <span className="bad small">{row.error.message}</span> : row.name}</td>
                <td>{row.execution_mode}</td>
                <td>{row.version}</td>
                <td>{row.nodes}</td>
                <td>{row.connections}</td>
                <td className="actions">
                  <a href={href("designer", row.workflow_id)} data-testid={`edit-definition-${row.workflow_id}`}>
                    Edit
                  </a>
                  <a href={`${href("executions")}?workflow_id=${encodeURIComponent(row.workflow_id)}`}>Executions</a>
                  <button className="small" onClick={() => setRun(row.workflow_id)} data-testid={`run-definition-${row.workflow_id}`}>
                    ▶ Run
                  </button>
                  <button
                    className="small danger"
                    onClick={() => setConfirming(row.workflow_id)}
                    title="Unregister (delete) this definition"
                    data-testid={`delete-definition-${row.workflow_id}`}
                  >
                    Unregister
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {run && <RunDialog workflowId={run} onClose={() => setRun(null)} />}
      {confirming && (
        <ConfirmUnregister
          workflowId={confirming}
          onConfirm={() => void unregister(confirming)}
          onCancel={() => setConfirming(null)}
        />
      )}
    </div>
  );
}

export function DefinitionPage({ workflowId }: { workflowId: string }) {
  const [workflow, setWorkflow] = useState<PluginWorkflow | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [run, setRun] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const [removeError, setRemoveError] = useState<string | null>(null);
  useEffect(() => {
    setWorkflow(null);
    api<PluginWorkflow>("GET", workflowPath(workflowId)).then(
      (w) => setWorkflow(normalizeWorkflow(w)),
      (exc) => setError(errorText(exc)),
    );
  }, [workflowId]);
  const nodes = useMemo(() => (workflow ? toNodes(workflow) : []), [workflow]);
  const [measured, onNodesChange] = useMeasuredNodes(nodes);
  const edges: Edge[] = useMemo(() => (workflow ? toEdges(workflow) : []), [workflow]);
  const remove = async () => {
    setConfirming(false);
    try {
      await api("DELETE", workflowPath(workflowId));
      navigate(href(""));
    } catch (exc) {
      setRemoveError(`Cannot unregister ${workflowId}: ${errorText(exc)}`);
    }
  };
  if (error) return <div className="page"><div className="error-box">{error}</div></div>;
  if (!workflow) return <div className="page muted">Loading…</div>;
  return (
    <div className="definition-page">
      <div className="toolbar">
        <a className="crumb" href={href("")}>Definitions</a>
        <span className="crumb-sep">/</span>
        <strong>{workflow.workflow_id}</strong>
        <span className="muted small">
          v{workflow.version} · {workflow.execution_mode} · {workflow.nodes.length} nodes
        </span>
        <span className="spacer" />
        <button onClick={() => downloadJson(`${workflow.workflow_id}.json`, workflow)}>Export JSON</button>
        <button className="danger" onClick={() => setConfirming(true)} data-testid="unregister-button">
          Unregister
        </button>
        <a className="button-link" href={href("designer", workflow.workflow_id)} data-testid="edit-button">
          Edit
        </a>
        <button className="primary" onClick={() => setRun(true)} data-testid="run-button">
          ▶ Run
        </button>
      </div>
      {removeError && (
        <div className="notice bad" data-testid="unregister-error">
          {removeError}
        </div>
      )}
      {(workflow.name || workflow.description) && (
        <div className="definition-meta">
          <strong>{workflow.name}</strong> {workflow.description && <span className="muted">— {workflow.description}</span>}
        </div>
      )}
      <div className="definition-body">
        <div className="canvas" data-testid="definition-canvas">
          <ReactFlow<PluginFlowNode, Edge>
            nodes={measured}
            edges={edges}
            nodeTypes={nodeTypes}
            edgeTypes={edgeTypes}
            onNodesChange={onNodesChange}
            nodesDraggable={false}
            nodesConnectable={false}
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
        <aside className="inspector">
          <h4>Schedules</h4>
          <DefinitionSchedules workflowId={workflow.workflow_id} />
          <h4>Recent executions</h4>
          <ExecutionsTable workflowId={workflow.workflow_id} status="" compact />
        </aside>
      </div>
      <Legend />
      {run && <RunDialog workflowId={workflow.workflow_id} onClose={() => setRun(false)} />}
      {confirming && (
        <ConfirmUnregister workflowId={workflowId} onConfirm={() => void remove()} onCancel={() => setConfirming(false)} />
      )}
    </div>
  );
}

export function ExecutionsPage({ workflowId, status }: { workflowId: string; status: string }) {
  const [definitions, setDefinitions] = useState<string[]>([]);
  useEffect(() => {
    api<WorkflowSummary[]>("GET", "/api/workflows").then(
      (rows) => setDefinitions(rows.map((r) => r.workflow_id)),
      () => setDefinitions([]),
    );
  }, []);
  const setFilter = (next: { workflow_id?: string; status?: string }) => {
    const params = new URLSearchParams();
    const w = next.workflow_id ?? workflowId;
    const s = next.status ?? status;
    if (w) params.set("workflow_id", w);
    if (s) params.set("status", s);
    const query = params.toString();
    navigate(href("executions") + (query ? `?${query}` : ""));
  };
  return (
    <div className="page">
      <div className="page-header">
        <h2>Executions</h2>
        <span className="spacer" />
        <label className="inline-label">
          Definition
          <select value={workflowId} onChange={(e) => setFilter({ workflow_id: e.target.value })} data-testid="filter-workflow">
            <option value="">all</option>
            {[...new Set([...definitions, ...(workflowId ? [workflowId] : [])])].map((id) => (
              <option key={id} value={id}>
                {id}
              </option>
            ))}
          </select>
        </label>
        <label className="inline-label">
          Status
          <select value={status} onChange={(e) => setFilter({ status: e.target.value })} data-testid="filter-status">
            {STATUS_FILTERS.map((s) => (
              <option key={s} value={s}>
                {s || "all"}
              </option>
            ))}
          </select>
        </label>
      </div>
      <ExecutionsTable workflowId={workflowId} status={status} />
    </div>
  );
}

function ExecutionsTable({ workflowId, status, compact = false }: { workflowId: string; status: string; compact?: boolean }) {
  const [rows, setRows] = useState<ExecutionRow[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [auto, setAuto] = useState(true);
  const [loadedAt, setLoadedAt] = useState<number | null>(null);
  const load = useCallback(() => {
    const params = new URLSearchParams();
    if (workflowId) params.set("workflow_id", workflowId);
    if (status) params.set("status", status);
    api<ExecutionRow[]>("GET", `/api/executions?${params}`).then(
      (r) => {
        setRows(r);
        setError(null);
        setLoadedAt(Date.now());
      },
      (exc) => setError(errorText(exc)),
    );
  }, [workflowId, status]);
  useEffect(() => {
    setRows(null);
    load();
  }, [load]);
  usePolling(load, 3000, auto);
  return (
    <div className="executions">
      <div className="table-tools">
        <label className="checkbox small">
          <input type="checkbox" checked={auto} onChange={(e) => setAuto(e.target.checked)} data-testid="auto-refresh" /> auto
          refresh
        </label>
        <button className="small" onClick={load}>
          Refresh
        </button>
        {loadedAt && <span className="muted small">updated {new Date(loadedAt).toLocaleTimeString()}</span>}
      </div>
      {error && <div className="error-box">{error}</div>}
      {rows === null ? (
        <p className="muted">Loading…</p>
      ) : rows.length === 0 ? (
        <p className="muted">No executions{status ? ` with status ${status}` : ""}.</p>
      ) : (
        <table className="table" data-testid="executions-table">
          <thead>
            <tr>
              <th>Execution</th>
              {!compact && <th>Definition</th>}
              <th>Status</th>
              {!compact && <th>Progress</th>}
              <th>Started</th>
              {!compact && <th>Duration</th>}
            </tr>
          </thead>
          <tbody>
            {rows.map((row) => (
              <tr key={row.execution_id} data-testid="execution-row" data-execution-id={row.execution_id} data-status={row.status}>
                <td className="mono">
                  <a href={href("executions", row.execution_id)}>
                    {compact ? row.execution_id.split("/").pop() : row.execution_id}
                  </a>
                </td>
                {!compact && (
                  <td>
                    <a href={href("workflows", row.workflow_id)}>{row.workflow_id}</a>
                    {row.workflow_version ? <span className="muted small"> v{row.workflow_version}</span> : null}
                  </td>
                )}
                <td>
                  <StatusBadge status={row.status} />
                </td>
                {!compact && <td>
                  {typeof row.progress === "number" ? (
                    <div className="mini-progress">
                      <div className={`progress-fill progress-${row.status}`} style={{ width: `${Math.round(row.progress * 100)}%` }} />
                    </div>
                  ) : (
                    <span className="muted">—</span>
                  )}
                </td>}
                <td>{formatTime(row.start_time)}</td>
                {!compact && <td>{formatDuration(row.start_time, row.end_time)}</td>}
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
