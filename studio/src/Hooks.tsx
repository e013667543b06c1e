// Webhooks: list, create (the secret is shown once), rotate a secret, delete.

import { useCallback, useEffect, useState } from "react";
import { api, errorText } from "./api";
import { ConfirmDialog, Modal, formatTime } from "./components";
import { href } from "./router";
import type { HookInfo, WorkflowSummary } from "./types";

function hookPath(hookId: string): string {
  return `/api/hooks/${encodeURIComponent(hookId)}`;
}

/** The one time a secret is shown: after creating a hook or rotating its secret. */
function SecretDialog({ hookId, secret, onClose }: { hookId: string; secret: string; onClose: () => void }) {
  const url = `${window.location.origin}/hooks/${encodeURIComponent(hookId)}`;
  return (
    <Modal title={`Secret of ${hookId}`} onClose={onClose} testId="hook-secret-dialog">
      <p className="help warn">Copy it now: it is not shown again (rotate it to get a new one).</p>
      <label className="form-label">Secret</label>
      <input readOnly value={secret} data-testid="hook-secret" onFocus={(e) => e.target.select()} />
      <label className="form-label">URL</label>
      <input readOnly value={url} onFocus={(e) => e.target.select()} />
      <p className="help">
        Senders sign each request: header <code>X-Orchestrator-Signature: t=&lt;unix seconds&gt;,v1=&lt;hex HMAC-SHA256 of
        "t.body" with the secret&gt;</code>, and may send an <code>Idempotency-Key</code> header so a repeated delivery starts
        nothing new.
      </p>
      <div className="modal-actions">
        <button className="primary" onClick={onClose} data-testid="hook-secret-close">
          Done
        </button>
      </div>
    </Modal>
  );
}

function CreateHookDialog({
  workflows,
  onCreated,
  onClose,
}: {
  workflows: string[];
  onCreated: (hookId: string, secret: string) => void;
  onClose: () => void;
}) {
  const [hookId, setHookId] = useState("");
  const [workflowId, setWorkflowId] = useState(workflows[0] ?? "");
  const [action, setAction] = useState<"start" | "event">("start");
  const [executionId, setExecutionId] = useState("");
  const [eventType, setEventType] = useState("");
  const [rate, setRate] = useState("60");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const create = async () => {
    setBusy(true);
    setError(null);
    try {
      const created = await api<{ hook_id: string; secret: string }>("POST", "/api/hooks", {
        hook_id: hookId.trim(),
        workflow_id: workflowId,
        action,
        execution_id: action === "event" ? executionId.trim() : null,
        event_type: action === "event" && eventType.trim() ? eventType.trim() : null,
        rate_per_minute: Number(rate) || null,
      });
      onCreated(created.hook_id, created.secret);
    } catch (exc) {
      setError(errorText(exc));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Modal title="New webhook" onClose={onClose} testId="hook-create-dialog">
      <label className="form-label">Hook id</label>
      <input value={hookId} autoFocus data-testid="hook-id-input" onChange={(e) => setHookId(e.target.value)} />
      <label className="form-label">Definition</label>
      <select value={workflowId} data-testid="hook-workflow-select" onChange={(e) => setWorkflowId(e.target.value)}>
        {workflows.map((id) => (
          <option key={id} value={id}>
            {id}
          </option>
        ))}
      </select>
      <label className="form-label">A delivery</label>
      <select value={action} data-testid="hook-action-select" onChange={(e) => setAction(e.target.value as "start" | "event")}>
        <option value="start">starts an execution (the body is its input data)</option>
        <option value="event">sends an event to a running EventDriven execution</option>
      </select>
      {action === "event" && (
        <div className="form-grid">
          <div>
            <label className="form-label">Execution id</label>
            <input value={executionId} data-testid="hook-execution-input" onChange={(e) => setExecutionId(e.target.value)} />
          </div>
          <div>
            <label className="form-label">Event type</label>
            <input value={eventType} placeholder="webhook" onChange={(e) => setEventType(e.target.value)} />
          </div>
        </div>
      )}
      <label className="form-label">Requests per minute</label>
      <input value={rate} inputMode="numeric" onChange={(e) => setRate(e.target.value)} />
      {error && <div className="error-box">{error}</div>}
      <div className="modal-actions">
        <button onClick={onClose}>Cancel</button>
        <button className="primary" disabled={busy || !hookId.trim() || !workflowId} onClick={create} data-testid="hook-create-button">
          {busy ? "Creating…" : "Create"}
        </button>
      </div>
    </Modal>
  );
}

export function HooksPage() {
  const [rows, setRows] = useState<HookInfo[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [workflows, setWorkflows] = useState<string[]>([]);
  const [creating, setCreating] = useState(false);
  const [shown, setShown] = useState<{ hookId: string; secret: string } | null>(null);
  const [deleting, setDeleting] = useState<string | null>(null);
  const load = useCallback(() => {
    api<HookInfo[]>("GET", "/api/hooks").then(
      (r) => {
        setRows(r);
        setError(null);
      },
      (exc) => setError(errorText(exc)),
    );
  }, []);
  useEffect(() => {
    load();
    api<WorkflowSummary[]>("GET", "/api/workflows").then(
      (r) => setWorkflows(r.map((w) => w.workflow_id)),
      () => setWorkflows([]),
    );
  }, [load]);
  const rotate = async (hookId: string) => {
    try {
      const rotated = await api<{ secret: string }>("POST", `${hookPath(hookId)}/rotate`, {});
      setShown({ hookId, secret: rotated.secret });
    } catch (exc) {
      setError(errorText(exc));
    }
  };
  const remove = async (hookId: string) => {
    setDeleting(null);
    try {
      await api<void>("DELETE", hookPath(hookId));
      load();
    } catch (exc) {
      setError(errorText(exc));
    }
  };
  return (
    <div className="page">
      <div className="page-header">
        <h2>Webhooks</h2>
        <span className="spacer" />
        <button className="primary" onClick={() => setCreating(true)} data-testid="hook-new">
          + New webhook
        </button>
      </div>
      <p className="help">
        A signed <code>POST /hooks/&lt;hook id&gt;</code> starts an execution with the request body as input data, or sends it as an
        event to a running EventDriven execution. Secrets are kept by this server, never in Temporal.
      </p>
      {error && <div className="error-box">{error}</div>}
      {rows === null ? (
        <p className="muted">Loading…</p>
      ) : rows.length === 0 ? (
        <p className="muted">No webhooks.</p>
      ) : (
        <table className="table" data-testid="hooks-table">
          <thead>
            <tr>
              <th>Hook</th>
              <th>Does</th>
              <th>Rate</th>
              <th>Created</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {rows.map((hook) => (
              <tr key={hook.hook_id} data-testid="hook-row" data-hook-id={hook.hook_id}>
                <td className="mono">/hooks/{hook.hook_id}</td>
                <td>
                  {hook.action === "event" ? (
                    <>
                      event <code>{hook.event_type}</code> to{" "}
                      <a href={href("executions", hook.execution_id ?? "")}>{hook.execution_id}</a>
                    </>
                  ) : (
                    <>
                      starts <a href={href("workflows", hook.workflow_id)}>{hook.workflow_id}</a>
                    </>
                  )}
                </td>
                <td>{hook.rate_per_minute}/min</td>
                <td>{formatTime(new Date(hook.created_at * 1000).toISOString())}</td>
                <td>
                  <button className="small" onClick={() => void rotate(hook.hook_id)} data-testid="hook-rotate">
                    Rotate secret
                  </button>{" "}
                  <button className="small danger" onClick={() => setDeleting(hook.hook_id)} data-testid="hook-delete">
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {creating && (
        <CreateHookDialog
          workflows={workflows}
          onClose={() => setCreating(false)}
          onCreated={(hookId, secret) => {
            setCreating(false);
            setShown({ hookId, secret });
            load();
          }}
        />
      )}
      {shown && <SecretDialog hookId={shown.hookId} secret={shown.secret} onClose={() => setShown(null)} />}
      {deleting && (
        <ConfirmDialog title="Delete a webhook" confirmLabel="Delete" onConfirm={() => void remove(deleting)} onCancel={() => setDeleting(null)}>
          <p>
            Delete <code>{deleting}</code>? Its URL answers 404 from then on; executions it started are not touched.
          </p>
        </ConfirmDialog>
      )}
    </div>
  );
}
