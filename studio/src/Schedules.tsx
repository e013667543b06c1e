// Schedules: the list of this task queue's schedules, one schedule's page (next and recent
// runs, pause, resume, trigger, backfill, delete), the dialog that creates one, and the
// panel of a definition's schedules on its page.

import { useCallback, useEffect, useState } from "react";
import { api, errorText, workflowPath } from "./api";
import { ConfirmDialog, Modal, formatTime, usePolling } from "./components";
import { href, navigate } from "./router";
import type { Json, JsonObject, OverlapPolicy, ScheduleDetails, ScheduleSummary, WorkflowSummary } from "./types";

const OVERLAPS: { value: OverlapPolicy; label: string }[] = [
  { value: "skip", label: "skip (a run due while one runs is left out)" },
  { value: "buffer_one", label: "buffer one (it waits; later ones are left out)" },
  { value: "buffer_all", label: "buffer all (they wait, in order)" },
  { value: "cancel_other", label: "cancel other (cancel the running one)" },
  { value: "terminate_other", label: "terminate other (terminate the running one)" },
  { value: "allow_all", label: "allow all (run side by side)" },
];

export function schedulePath(scheduleId: string): string {
  return `/api/schedules/${encodeURIComponent(scheduleId)}`;
}

export function describeWhen(s: ScheduleSummary): string {
  if (s.cron) return `cron ${s.cron}${s.time_zone ? ` (${s.time_zone})` : ""}`;
  if (s.interval_seconds) return `every ${formatSeconds(s.interval_seconds)}`;
  return "—";
}

function formatSeconds(seconds: number): string {
  for (const [unit, size] of [
    ["d", 86400],
    ["h", 3600],
    ["m", 60],
  ] as const) {
    if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}

function parseDuration(text: string): number | null {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$/i.exec(text);
  if (!match) return null;
  const unit = (match[2] ?? "s").toLowerCase();
  return Number(match[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[unit as "s" | "m" | "h" | "d"];
}

function parseObject(text: string): JsonObject {
  const parsed = JSON.parse(text || "{}") as Json;
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new Error("the input must be a JSON object");
  }
  return parsed;
}

/** The dialog that creates a schedule, of ``workflowId`` or of a definition picked here. */
export function CreateScheduleDialog({
  workflowId,
  onClose,
  onCreated,
}: {
  workflowId?: string;
  onClose: () => void;
  onCreated: (details: ScheduleDetails) => void;
}) {
  const [definitions, setDefinitions] = useState<string[]>(workflowId ? [workflowId] : []);
  const [chosen, setChosen] = useState(workflowId ?? "");
  const [kind, setKind] = useState<"interval" | "cron">("interval");
  const [every, setEvery] = useState("1h");
  const [cron, setCron] = useState("0 6 * * *");
  const [timeZone, setTimeZone] = useState("");
  const [overlap, setOverlap] = useState<OverlapPolicy>("skip");
  const [input, setInput] = useState("{}");
  const [scheduleId, setScheduleId] = useState("");
  const [paused, setPaused] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (workflowId) return;
    api<WorkflowSummary[]>("GET", "/api/workflows").then(
      (rows) => {
        setDefinitions(rows.map((r) => r.workflow_id));
        setChosen((current) => current || rows[0]?.workflow_id || "");
      },
      (exc) => setError(errorText(exc)),
    );
  }, [workflowId]);
  const create = async () => {
    const body: JsonObject = { overlap, paused };
    try {
      body.input_data = parseObject(input);
    } catch (exc) {
      setError((exc as Error).message);
      return;
    }
    if (kind === "interval") {
      const seconds = parseDuration(every);
      if (seconds === null) {
        setError(`“${every}” is not a duration (like 30s, 5m, 2h or 1d)`);
        return;
      }
      body.interval_seconds = seconds;
    } else {
      body.cron = cron;
      if (timeZone.trim()) body.time_zone = timeZone.trim();
    }
    if (scheduleId.trim()) body.schedule_id = scheduleId.trim();
    setBusy(true);
    try {
      const details = await api<ScheduleDetails>("POST", `${workflowPath(chosen)}/schedules`, body);
      onCreated(details);
    } catch (exc) {
      setError(errorText(exc));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Modal title={workflowId ? `Schedule ${workflowId}` : "New schedule"} onClose={onClose} testId="schedule-dialog">
      {!workflowId && (
        <>
          <label className="form-label">Definition</label>
          <select value={chosen} onChange={(e) => setChosen(e.target.value)} data-testid="schedule-workflow">
            {definitions.map((id) => (
              <option key={id} value={id}>
                {id}
              </option>
            ))}
          </select>
        </>
      )}
      <label className="form-label">When</label>
      <div className="inline-choices">
        <label className="checkbox">
          <input type="radio" checked={kind === "interval"} onChange={() => setKind("interval")} data-testid="schedule-kind-interval" /> every
        </label>
        <label className="checkbox">
          <input type="radio" checked={kind === "cron"} onChange={() => setKind("cron")} data-testid="schedule-kind-cron" /> cron
        </label>
      </div>
      {kind === "interval" ? (
        <input type="text" value={every} onChange={(e) => setEvery(e.target.value)} placeholder="30s, 5m, 2h, 1d" data-testid="schedule-every" />
      ) : (
        <>
          <input type="text" value={cron} onChange={(e) => setCron(e.target.value)} placeholder="minute hour day month weekday" data-testid="schedule-cron" />
          <input
            type="text"
            value={timeZone}
            onChange={(e) => setTimeZone(e.target.value)}
            placeholder="time zone (default UTC), e.g. Europe/Paris"
            data-testid="schedule-time-zone"
          />
        </>
      )}
      <label className="form-label">When a run is due while the last one still runs</label>
      <select value={overlap} onChange={(e) => setOverlap(e.target.value as OverlapPolicy)} data-testid="schedule-overlap">
        {OVERLAPS.map((o) => (
          <option key={o.value} value={o.value}>
            {o.label}
          </option>
        ))}
      </select>
      <label className="form-label">Input data of every run (JSON object)</label>
      <textarea className="json-input" rows={4} value={input} spellCheck={false} onChange={(e) => setInput(e.target.value)} data-testid="schedule-input" />
      <label className="form-label">Schedule id (optional)</label>
      <input type="text" value={scheduleId} onChange={(e) => setScheduleId(e.target.value)} placeholder="default: <workflow>-<8 hex>" data-testid="schedule-id" />
      <label className="checkbox">
        <input type="checkbox" checked={paused} onChange={(e) => setPaused(e.target.checked)} data-testid="schedule-paused" /> create it paused
      </label>
      {error && (
        <div className="error-box" data-testid="schedule-error">
          {error}
        </div>
      )}
      <div className="modal-actions">
        <button onClick={onClose}>Cancel</button>
        <button className="primary" disabled={busy || !chosen} onClick={create} data-testid="schedule-create-button">
          {busy ? "Creating…" : "Create schedule"}
        </button>
      </div>
    </Modal>
  );
}

function SchedulesTable({ rows, compact = false }: { rows: ScheduleSummary[]; compact?: boolean }) {
  return (
    <table className="table" data-testid="schedules-table">
      <thead>
        <tr>
          <th>Schedule</th>
          {!compact && <th>Definition</th>}
          <th>When</th>
          <th>State</th>
          <th>Next run</th>
          {!compact && <th>Last run</th>}
        </tr>
      </thead>
      <tbody>
        {rows.map((row) => {
          const last = row.recent_runs[row.recent_runs.length - 1];
          return (
            <tr key={row.schedule_id} data-testid="schedule-row" data-schedule-id={row.schedule_id}>
              <td className="mono">
                <a href={href("schedules", row.schedule_id)}>{row.schedule_id}</a>
              </td>
              {!compact && (
                <td>
                  <a href={href("workflows", row.workflow_id)}>{row.workflow_id}</a>
                </td>
              )}
              <td>{describeWhen(row)}</td>
              <td>
                <span className={`badge badge-${row.paused ? "paused" : "running"}`}>{row.paused ? "paused" : "active"}</span>
              </td>
              <td>{row.paused || row.next_action_times.length === 0 ? <span className="muted">—</span> : formatTime(row.next_action_times[0])}</td>
              {!compact && (
                <td>
                  {last ? (
                    <a className="mono small" href={href("executions", last.execution_id)}>
                      {formatTime(last.scheduled_at)}
                    </a>
                  ) : (
                    <span className="muted">—</span>
                  )}
                </td>
              )}
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

function useSchedules(workflowId: string): [ScheduleSummary[] | null, string | null, () => void] {
  const [rows, setRows] = useState<ScheduleSummary[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = useCallback(() => {
    const query = workflowId ? `?workflow_id=${encodeURIComponent(workflowId)}` : "";
    api<ScheduleSummary[]>("GET", `/api/schedules${query}`).then(
      (r) => {
        setRows(r);
        setError(null);
      },
      (exc) => setError(errorText(exc)),
    );
  }, [workflowId]);
  useEffect(load, [load]);
  usePolling(load, 5000);
  return [rows, error, load];
}

export function SchedulesPage() {
  const [rows, error, load] = useSchedules("");
  const [creating, setCreating] = useState(false);
  return (
    <div className="page">
      <div className="page-header">
        <h2>Schedules</h2>
        <span className="spacer" />
        <button onClick={load}>Refresh</button>
        <button className="primary" onClick={() => setCreating(true)} data-testid="new-schedule-button">
          + New schedule
        </button>
      </div>
      <p className="muted small">
        Each schedule is a Temporal Schedule; every run it starts is an ordinary execution of the definition current at that time. Runs
        need a worker polling this task queue.
      </p>
      {error && <div className="error-box">{error}</div>}
      {rows === null ? (
        <p className="muted">Loading…</p>
      ) : rows.length === 0 ? (
        <p className="muted" data-testid="schedules-empty">
          No schedules on this task queue.
        </p>
      ) : (
        <SchedulesTable rows={rows} />
      )}
      {creating && (
        <CreateScheduleDialog
          onClose={() => setCreating(false)}
          onCreated={(details) => {
            setCreating(false);
            navigate(href("schedules", details.schedule_id));
          }}
        />
      )}
    </div>
  );
}

/** The panel of a definition's page: its schedules and a button to add one. */
export function DefinitionSchedules({ workflowId }: { workflowId: string }) {
  const [rows, error, load] = useSchedules(workflowId);
  const [creating, setCreating] = useState(false);
  return (
    <div className="definition-schedules" data-testid="definition-schedules">
      <div className="table-tools">
        <button className="small" onClick={() => setCreating(true)} data-testid="add-schedule-button">
          + Schedule
        </button>
      </div>
      {error && <div className="error-box">{error}</div>}
      {rows === null ? (
        <p className="muted">Loading…</p>
      ) : rows.length === 0 ? (
        <p className="muted small">Not scheduled.</p>
      ) : (
        <SchedulesTable rows={rows} compact />
      )}
      {creating && (
        <CreateScheduleDialog
          workflowId={workflowId}
          onClose={() => setCreating(false)}
          onCreated={() => {
            setCreating(false);
            load();
          }}
        />
      )}
    </div>
  );
}

export function SchedulePage({ scheduleId }: { scheduleId: string }) {
  const [details, setDetails] = useState<ScheduleDetails | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [confirming, setConfirming] = useState(false);
  const [backfilling, setBackfilling] = useState(false);
  const load = useCallback(() => {
    api<ScheduleDetails>("GET", schedulePath(scheduleId)).then(
      (d) => {
        setDetails(d);
        setError(null);
      },
      (exc) => setError(errorText(exc)),
    );
  }, [scheduleId]);
  useEffect(load, [load]);
  usePolling(load, 3000);
  const act = async (action: "pause" | "resume" | "trigger", done: string) => {
    try {
      await api("POST", `${schedulePath(scheduleId)}/${action}`, {});
      setNotice(done);
      setError(null);
      load();
    } catch (exc) {
      setError(errorText(exc));
    }
  };
  const remove = async () => {
    setConfirming(false);
    try {
      await api("DELETE", schedulePath(scheduleId));
      navigate(href("schedules"));
    } catch (exc) {
      setError(errorText(exc));
    }
  };
  if (!details) return <div className="page">{error ? <div className="error-box">{error}</div> : <p className="muted">Loading…</p>}</div>;
  return (
    <div className="page" data-testid="schedule-page">
      <div className="page-header">
        <a className="crumb" href={href("schedules")}>
          Schedules
        </a>
        <span className="crumb-sep">/</span>
        <h2 className="mono">{details.schedule_id}</h2>
        <span className={`badge badge-${details.paused ? "paused" : "running"}`} data-testid="schedule-state">
          {details.paused ? "paused" : "active"}
        </span>
        <span className="spacer" />
        {details.paused ? (
          <button onClick={() => void act("resume", "Resumed.")} data-testid="schedule-resume">
            Resume
          </button>
        ) : (
          <button onClick={() => void act("pause", "Paused.")} data-testid="schedule-pause">
            Pause
          </button>
        )}
        <button onClick={() => void act("trigger", "Triggered: the run appears below in a moment.")} data-testid="schedule-trigger">
          ▶ Run now
        </button>
        <button onClick={() => setBackfilling(true)} data-testid="schedule-backfill">
          Backfill…
        </button>
        <button className="danger" onClick={() => setConfirming(true)} data-testid="schedule-delete">
          Delete
        </button>
      </div>
      {notice && <div className="notice ok">{notice}</div>}
      {error && <div className="error-box">{error}</div>}
      <table className="table details-table" data-testid="schedule-details">
        <tbody>
          <tr>
            <th>Definition</th>
            <td>
              <a href={href("workflows", details.workflow_id)}>{details.workflow_id}</a>
              {details.workflow_version ? <span className="muted small"> v{details.workflow_version}</span> : null}
            </td>
          </tr>
          <tr>
            <th>When</th>
            <td data-testid="schedule-when">{describeWhen(details)}</td>
          </tr>
          {details.temporal_ui && (
            <tr>
              <th>Temporal UI</th>
              <td>
                <a href={details.temporal_ui} target="_blank" rel="noreferrer" data-testid="schedule-temporal-ui">
                  this schedule in the Temporal UI ↗
                </a>
              </td>
            </tr>
          )}
          <tr>
            <th>Overlap</th>
            <td>{details.overlap}</td>
          </tr>
          {details.paused && details.note && (
            <tr>
              <th>Note</th>
              <td>{details.note}</td>
            </tr>
          )}
          <tr>
            <th>Input</th>
            <td className="mono small">{JSON.stringify(details.input_data)}</td>
          </tr>
          <tr>
            <th>Actions</th>
            <td>
              {details.actions_taken} taken · {details.skipped_for_overlap} skipped for overlap · {details.missed_catchup_window} missed
            </td>
          </tr>
          <tr>
            <th>Next runs</th>
            <td data-testid="schedule-next">
              {details.paused ? <span className="muted">none while paused</span> : details.next_action_times.slice(0, 5).map(formatTime).join(" · ") || "—"}
            </td>
          </tr>
        </tbody>
      </table>
      <h3>Recent runs</h3>
      {details.recent_runs.length === 0 ? (
        <p className="muted">No runs yet.</p>
      ) : (
        <table className="table" data-testid="schedule-runs">
          <thead>
            <tr>
              <th>Execution</th>
              <th>Scheduled for</th>
              <th>Started</th>
            </tr>
          </thead>
          <tbody>
            {[...details.recent_runs].reverse().map((run) => (
              <tr key={run.execution_id + run.started_at} data-testid="schedule-run">
                <td className="mono">
                  <a href={href("executions", run.execution_id)}>{run.execution_id}</a>
                  {details.running.includes(run.execution_id) && <span className="badge badge-running run-badge">running</span>}
                </td>
                <td>{formatTime(run.scheduled_at)}</td>
                <td>{formatTime(run.started_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {backfilling && (
        <BackfillDialog
          scheduleId={scheduleId}
          onClose={() => setBackfilling(false)}
          onDone={() => {
            setBackfilling(false);
            setNotice("Backfilling: the runs appear below as they start.");
            load();
          }}
        />
      )}
      {confirming && (
        <ConfirmDialog title="Delete a schedule" confirmLabel="Delete" onConfirm={() => void remove()} onCancel={() => setConfirming(false)}>
          <p>
            Delete <code>{scheduleId}</code>?
          </p>
          <p className="muted small">No run starts from it any more; runs it started go on.</p>
        </ConfirmDialog>
      )}
    </div>
  );
}

function BackfillDialog({ scheduleId, onClose, onDone }: { scheduleId: string; onClose: () => void; onDone: () => void }) {
  const [start, setStart] = useState("");
  const [end, setEnd] = useState("");
  const [overlap, setOverlap] = useState<OverlapPolicy | "">("");
  const [error, setError] = useState<string | null>(null);
  const submit = async () => {
    const body: JsonObject = { start: new Date(start).toISOString(), end: new Date(end).toISOString() };
    if (overlap) body.overlap = overlap;
    try {
      await api("POST", `${schedulePath(scheduleId)}/backfill`, body);
      onDone();
    } catch (exc) {
      setError(errorText(exc));
    }
  };
  const valid = start !== "" && end !== "" && !Number.isNaN(Date.parse(start)) && !Number.isNaN(Date.parse(end));
  return (
    <Modal title={`Backfill ${scheduleId}`} onClose={onClose} testId="backfill-dialog">
      <p className="muted small">Takes the runs the schedule would have started in this range (your browser's time zone).</p>
      <label className="form-label">From</label>
      <input type="datetime-local" value={start} onChange={(e) => setStart(e.target.value)} data-testid="backfill-start" />
      <label className="form-label">To</label>
      <input type="datetime-local" value={end} onChange={(e) => setEnd(e.target.value)} data-testid="backfill-end" />
      <label className="form-label">Overlap</label>
      <select value={overlap} onChange={(e) => setOverlap(e.target.value as OverlapPolicy | "")}>
        <option value="">the schedule's</option>
        {OVERLAPS.map((o) => (
          <option key={o.value} value={o.value}>
            {o.label}
          </option>
        ))}
      </select>
      {error && <div className="error-box">{error}</div>}
      <div className="modal-actions">
        <button onClick={onClose}>Cancel</button>
        <button className="primary" disabled={!valid} onClick={submit} data-testid="backfill-submit">
          Backfill
        </button>
      </div>
    </Modal>
  );
}
