// The shell: header, navigation, routes and the token prompt.

import { useEffect, useState } from "react";
import { api, onUnauthorized, setToken } from "./api";
import { Modal } from "./components";
import { Designer } from "./Designer";
import { HooksPage } from "./Hooks";
import { Monitor } from "./Monitor";
import { DefinitionPage, DefinitionsPage, ExecutionsPage } from "./pages";
import { href, useRoute } from "./router";
import { SchedulePage, SchedulesPage } from "./Schedules";
import type { ServerInfo } from "./types";

function TokenPrompt({ onDone }: { onDone: () => void }) {
  const [value, setValue] = useState("");
  return (
    <Modal title="This studio needs its token" onClose={onDone} testId="token-dialog">
      <p className="help">The server was started with a token. Paste it here; it is kept for this browser tab only.</p>
      <input type="password" value={value} autoFocus data-testid="token-input" onChange={(e) => setValue(e.target.value)} />
      <div className="modal-actions">
        <button
          className="primary"
          data-testid="token-submit"
          onClick={() => {
            setToken(value.trim());
            onDone();
            window.location.reload();
          }}
        >
          Use token
        </button>
      </div>
    </Modal>
  );
}

export function App() {
  const route = useRoute();
  const [info, setInfo] = useState<ServerInfo | null>(null);
  const [needToken, setNeedToken] = useState(false);
  useEffect(() => onUnauthorized(() => setNeedToken(true)), []);
  useEffect(() => {
    api<ServerInfo>("GET", "/api/info").then(setInfo, () => setInfo(null));
  }, []);

  const [first, ...rest] = route.segments;
  let page;
  let section = "definitions";
  if (first === "designer") {
    page = <Designer key={rest[0] ?? "new"} workflowId={rest[0] ?? null} />;
  } else if (first === "workflows" && rest[0]) {
    page = <DefinitionPage workflowId={rest[0]} />;
  } else if (first === "executions" && rest.length > 0) {
    section = "executions";
    page = <Monitor key={rest.join("/")} executionId={rest.join("/")} />;
  } else if (first === "hooks") {
    section = "hooks";
    page = <HooksPage />;
  } else if (first === "schedules" && rest[0]) {
    section = "schedules";
    page = <SchedulePage key={rest[0]} scheduleId={rest[0]} />;
  } else if (first === "schedules") {
    section = "schedules";
    page = <SchedulesPage />;
  } else if (first === "executions") {
    section = "executions";
    page = <ExecutionsPage workflowId={route.query.get("workflow_id") ?? ""} status={route.query.get("status") ?? ""} />;
  } else {
    page = <DefinitionsPage />;
  }

  return (
    <div className="app">
      <header className="topbar">
        <a className="brand" href={href("")}>
          <img src="/favicon.svg" alt="" width={22} height={22} />
          Orchestrator Studio
        </a>
        <nav>
          <a className={section === "definitions" ? "active" : ""} href={href("")} data-testid="nav-definitions">
            Definitions
          </a>
          <a className={section === "executions" ? "active" : ""} href={href("executions")} data-testid="nav-executions">
            Executions
          </a>
          <a className={section === "hooks" ? "active" : ""} href={href("hooks")} data-testid="nav-hooks">
            Webhooks
          </a>
          <a className={section === "schedules" ? "active" : ""} href={href("schedules")} data-testid="nav-schedules">
            Schedules
          </a>
          <a href={href("designer")} data-testid="nav-designer">
            + New
          </a>
        </nav>
        <span className="spacer" />
        {info && (
          <span className="server-info" data-testid="server-info">
            task queue <code>{info.task_queue}</code> · namespace <code>{info.namespace}</code>
            {info.temporal_ui && (
              <>
                {" "}
                ·{" "}
                <a href={info.temporal_ui} target="_blank" rel="noreferrer">
                  Temporal UI ↗
                </a>
              </>
            )}
          </span>
        )}
      </header>
      <main>{page}</main>
      {needToken && <TokenPrompt onDone={() => setNeedToken(false)} />}
    </div>
  );
}
