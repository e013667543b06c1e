// Small shared pieces: badges, dialogs, JSON views, time formatting, definition helpers.

import { useEffect, useState, type ReactNode } from "react";
import { api, errorText, workflowPath } from "./api";
import { navigate, href } from "./router";
import type {
  ConnectionType,
  ExecutionMode,
  Json,
  JsonObject,
  NodeType,
  PluginWorkflow,
  WorkflowConnection,
  WorkflowNode,
} from "./types";

export function StatusBadge({ status, testId }: { status: string; testId?: string }) {
  return (
    <span className={`badge badge-${status}`} data-testid={testId} data-status={status}>
      {status}
    </span>
  );
}

export function Modal({
  title,
  children,
  onClose,
  testId,
}: {
  title: string;
  children: ReactNode;
  onClose: () => void;
  testId?: string;
}) {
  useEffect(() => {
    const key = (e: KeyboardEvent) => e.key === "Escape" && onClose();
    window.addEventListener("keydown", key);
    return () => window.removeEventListener("keydown", key);
  }, [onClose]);
  return (
    <div className="modal-backdrop" onMouseDown={onClose}>
      <div className="modal" data-testid={testId} onMouseDown={(e) => e.stopPropagation()} role="dialog" aria-label={title}>
        <div className="modal-header">
          <h3>{title}</h3>
          <button className="icon-button" onClick={onClose} aria-label="close">
            ×
          </button>
        </div>
        {children}
      </div>
    </div>
  );
}

/** Asks before a change that cannot be undone; Cancel (focused first), Escape and a click
 * outside say no. */
export function ConfirmDialog({
  title,
  children,
  confirmLabel,
  onConfirm,
  onCancel,
}: {
  title: string;
  children: ReactNode;
  confirmLabel: string;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  return (
    <Modal title={title} onClose={onCancel} testId="confirm-dialog">
      {children}
      <div className="modal-actions">
        <button onClick={onCancel} autoFocus data-testid="confirm-cancel">
          Cancel
        </button>
        <button className="danger" onClick={onConfirm} data-testid="confirm-ok">
          {confirmLabel}
        </button>
      </div>
    </Modal>
  );
}

/** The confirmation of unregistering a definition. */
export function ConfirmUnregister({
  workflowId,
  onConfirm,
  onCancel,
}: {
  workflowId: string;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  return (
    <ConfirmDialog title="Unregister a definition" confirmLabel="Unregister" onConfirm={onConfirm} onCancel={onCancel}>
      <p>
        Unregister <code>{workflowId}</code>?
      </p>
      <p className="muted small">
        It leaves this task queue: no new execution can start. Running executions keep their snapshot and finish.
      </p>
    </ConfirmDialog>
  );
}

export function JsonView({ value, testId }: { value: unknown; testId?: string }) {
  if (value === undefined) return <span className="muted">—</span>;
  return (
    <pre className="json-view" data-testid={testId}>
      {JSON.stringify(value, null, 2)}
    </pre>
  );
}

export function formatTime(iso: string | null | undefined): string {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleString(undefined, {
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}

export function formatDuration(start: string | null | undefined, end: string | null | undefined, now = Date.now()): string {
  if (!start) return "—";
  const begin = new Date(start).getTime();
  const finish = end ? new Date(end).getTime() : now;
  if (Number.isNaN(begin) || Number.isNaN(finish)) return "—";
  const ms = Math.max(0, finish - begin);
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  if (minutes < 60) return `${minutes} min ${seconds} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** Start an execution with input JSON, then open its monitor. */
export function RunDialog({ workflowId, onClose }: { workflowId: string; onClose: () => void }) {
  const [text, setText] = useState("{}");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const start = async () => {
    let input: JsonObject;
    try {
      const parsed = JSON.parse(text || "{}") as Json;
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
        throw new Error("the input must be a JSON object");
      }
      input = parsed;
    } catch (exc) {
      setError((exc as Error).message);
      return;
    }
    setBusy(true);
    try {
      const started = await api<{ execution_id: string }>("POST", `${workflowPath(workflowId)}/executions`, {
        input_data: input,
      });
      onClose();
      navigate(href("executions", started.execution_id));
    } catch (exc) {
      setError(errorText(exc));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Modal title={`Run ${workflowId}`} onClose={onClose} testId="run-dialog">
      <label className="form-label">Input data (JSON object, the root nodes' inputs)</label>
      <textarea
        className="json-input"
        rows={8}
        value={text}
        spellCheck={false}
        data-testid="run-input"
        onChange={(e) => setText(e.target.value)}
      />
      {error && <div className="error-box">{error}</div>}
      <div className="modal-actions">
        <button onClick={onClose}>Cancel</button>
        <button className="primary" disabled={busy} onClick={start} data-testid="run-start-button">
          {busy ? "Starting…" : "Start execution"}
        </button>
      </div>
    </Modal>
  );
}

// -- definitions as JSON ---------------------------------------------------------------------

const NODE_TYPE_NAMES: Record<string, NodeType> = {
  Source: "source",
  Processor: "processor",
  Sink: "sink",
  Decision: "decision",
  Aggregator: "aggregator",
  Splitter: "splitter",
  Custom: "custom",
};
const CONNECTION_TYPE_NAMES: Record<string, ConnectionType> = {
  DataFlow: "data_flow",
  Control: "control",
  Event: "event",
  Dependency: "dependency",
};
const MODE_NAMES: Record<string, ExecutionMode> = {
  Sequential: "sequential",
  Parallel: "parallel",
  Conditional: "conditional",
  EventDriven: "event_driven",
  Streaming: "streaming",
};

function enumValue<T extends string>(value: unknown, names: Record<string, T>, fallback: T): T {
  const values = Object.values(names);
  if (typeof value === "number") return values[value] ?? (value as unknown as T);
  if (typeof value === "string") {
    if ((values as string[]).includes(value)) return value as T;
    if (value in names) return names[value];
    return value as T; // unknown: the server's validation names it
  }
  return fallback;
}

function object(value: unknown): JsonObject {
  return value && typeof value === "object" && !Array.isArray(value) ? (value as JsonObject) : {};
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.map(String) : [];
}

/** A definition as the engine would read it (from_json accepts member names and the
 * integers QtForge writes; missing fields take their defaults). */
export function normalizeWorkflow(raw: unknown): PluginWorkflow {
  const data = object(raw);
  const nodes = Array.isArray(data.nodes) ? data.nodes : [];
  const connections = Array.isArray(data.connections) ? data.connections : [];
  return {
    ...(data as unknown as PluginWorkflow),
    workflow_id: String(data.workflow_id ?? ""),
    name: String(data.name ?? ""),
    description: String(data.description ?? ""),
    execution_mode: enumValue(data.execution_mode, MODE_NAMES, "sequential"),
    global_configuration: object(data.global_configuration),
    metadata: object(data.metadata),
    version: typeof data.version === "number" ? data.version : 0,
    nodes: nodes.map((n): WorkflowNode => {
      const node = object(n);
      return {
        ...(node as unknown as WorkflowNode),
        node_id: String(node.node_id ?? ""),
        name: String(node.name ?? ""),
        description: String(node.description ?? ""),
        plugin_id: String(node.plugin_id ?? ""),
        node_type: enumValue(node.node_type, NODE_TYPE_NAMES, "processor"),
        configuration: object(node.configuration),
        ui_properties: object(node.ui_properties),
        input_ports: strings(node.input_ports),
        output_ports: strings(node.output_ports),
      };
    }),
    connections: connections.map((c): WorkflowConnection => {
      const conn = object(c);
      return {
        ...(conn as unknown as WorkflowConnection),
        connection_id: String(conn.connection_id ?? ""),
        source_node: String(conn.source_node ?? ""),
        source_port: String(conn.source_port ?? ""),
        target_node: String(conn.target_node ?? ""),
        target_port: String(conn.target_port ?? ""),
        connection_type: enumValue(conn.connection_type, CONNECTION_TYPE_NAMES, "data_flow"),
        properties: object(conn.properties),
      };
    }),
  };
}

export function downloadJson(name: string, value: unknown): void {
  const blob = new Blob([JSON.stringify(value, null, 2) + "\n"], { type: "application/json" });
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function usePolling(callback: () => void, intervalMs: number, enabled = true): void {
  useEffect(() => {
    if (!enabled) return;
    const handle = setInterval(callback, intervalMs);
    return () => clearInterval(handle);
  }, [callback, intervalMs, enabled]);
}
