// The designer: create or edit a definition on a canvas, validated live by the engine.

import {
  Background,
  Controls,
  MiniMap,
  ReactFlow,
  applyNodeChanges,
  type Connection,
  type Edge,
  type NodeChange,
  type ReactFlowInstance,
} from "@xyflow/react";
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { ApiError, api, errorText, workflowPath } from "./api";
import { Modal, RunDialog, downloadJson, normalizeWorkflow } from "./components";
import {
  ANY_PORT,
  CONNECTION_TYPES,
  HandleKeeper,
  Legend,
  NODE_TYPES,
  TypeIcon,
  edgeTypes,
  nodeTypes,
  toEdges,
  toNodes,
  type PluginFlowNode,
} from "./graph";
import { autoLayout, positionsOf, readablePositions, type Size } from "./layout";
import { href, navigate } from "./router";
import { SchemaForm } from "./SchemaForm";
import type {
  Catalog,
  ConnectionType,
  ExecutionMode,
  Json,
  JsonObject,
  NodeType,
  PluginInfo,
  PluginWorkflow,
  Problem,
  ValidationReport,
  WorkflowConnection,
  WorkflowNode,
} from "./types";

const NO_PROBLEMS: Problem[] = [];
const FIT = { padding: 0.06, maxZoom: 1.1 };

// A save that registers a new definition moves to its own address (a new designer): the
// message of that save is handed over here.
let savedMessage: { workflowId: string; text: string } | null = null;

type Selection = { kind: "node"; id: string } | { kind: "edge"; index: number } | null;

const MODES: { value: ExecutionMode; label: string }[] = [
  { value: "sequential", label: "Sequential" },
  { value: "parallel", label: "Parallel" },
  { value: "conditional", label: "Conditional" },
  { value: "event_driven", label: "EventDriven" },
  { value: "streaming", label: "Streaming" },
];

function emptyWorkflow(): PluginWorkflow {
  return {
    workflow_id: "",
    name: "",
    description: "",
    execution_mode: "sequential",
    nodes: [],
    connections: [],
    global_configuration: {},
    metadata: {},
    version: 0,
  };
}

/** Every node gets a stored position (auto-laid out where missing, spread apart where saved
 * too close: see readablePositions), so saving keeps them. */
function withPositions(workflow: PluginWorkflow): PluginWorkflow {
  const positions = readablePositions(workflow);
  return {
    ...workflow,
    nodes: workflow.nodes.map((node) => ({
      ...node,
      ui_properties: { ...node.ui_properties, position: { ...positions[node.node_id] } },
    })),
  };
}

function withoutLayout(workflow: PluginWorkflow): string {
  return JSON.stringify({
    ...workflow,
    version: 0,
    nodes: workflow.nodes.map((node) => ({ ...node, ui_properties: {} })),
  });
}

function uniqueId(base: string, taken: Set<string>): string {
  const clean = base.replace(/[^A-Za-z0-9_.-]/g, "_").replace(/^[.-]+/, "") || "node";
  if (!taken.has(clean)) return clean;
  for (let i = 2; ; i++) if (!taken.has(`${clean}_${i}`)) return `${clean}_${i}`;
}

function useCatalog(): { plugins: PluginInfo[]; published: boolean; error: string | null } {
  const [catalog, setCatalog] = useState<Catalog | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api<Catalog>("GET", "/api/catalog").then(setCatalog, (exc) => setError(errorText(exc)));
  }, []);
  return { plugins: catalog?.plugins ?? [], published: catalog?.published ?? false, error };
}

export function Designer({ workflowId }: { workflowId: string | null }) {
  const catalog = useCatalog();
  const pluginById = useMemo(
    () => new Map(catalog.plugins.map((p) => [p.plugin_id, p])),
    [catalog.plugins],
  );
  const [workflow, setWorkflow] = useState<PluginWorkflow | null>(workflowId ? null : emptyWorkflow());
  const [loadError, setLoadError] = useState<string | null>(null);
  // The stored version this editor started from (0: a new definition, must not exist yet).
  const [baseVersion, setBaseVersion] = useState<number>(0);
  const [dirty, setDirty] = useState(false);
  const [selection, setSelection] = useState<Selection>(null);
  const [report, setReport] = useState<ValidationReport | null>(null);
  const [validating, setValidating] = useState(false);
  const [saveMessage, setSaveMessage] = useState<{ ok: boolean; text: string } | null>(() => {
    const handed = savedMessage && savedMessage.workflowId === workflowId ? savedMessage : null;
    savedMessage = null;
    return handed ? { ok: true, text: handed.text } : null;
  });
  const flow = useRef<ReactFlowInstance<PluginFlowNode, Edge> | null>(null);
  const refit = useCallback(() => {
    setTimeout(() => void flow.current?.fitView({ ...FIT, duration: 200 }), 60);
  }, []);
  const [saving, setSaving] = useState(false);
  const [connectionType, setConnectionType] = useState<ConnectionType>("data_flow");
  const [showImport, setShowImport] = useState(false);
  const [showRun, setShowRun] = useState(false);
  const [showGlobal, setShowGlobal] = useState(false);

  useEffect(() => {
    if (!workflowId) {
      setWorkflow(emptyWorkflow());
      setBaseVersion(0);
      setDirty(false);
      return;
    }
    let cancelled = false;
    api<PluginWorkflow>("GET", workflowPath(workflowId)).then(
      (loaded) => {
        if (cancelled) return;
        setWorkflow(withPositions(normalizeWorkflow(loaded)));
        setBaseVersion(loaded.version);
        setDirty(false);
      },
      (exc) => !cancelled && setLoadError(errorText(exc)),
    );
    return () => {
      cancelled = true;
    };
  }, [workflowId]);

  const update = useCallback((change: (current: PluginWorkflow) => PluginWorkflow) => {
    setWorkflow((current) => (current ? change(current) : current));
    setDirty(true);
    setSaveMessage(null);
  }, []);

  // -- live validation (debounced; positions do not count) ---------------------------------
  const validationKey = useMemo(() => (workflow ? withoutLayout(workflow) : null), [workflow]);
  const validationRound = useRef(0);
  useEffect(() => {
    if (!validationKey) return;
    setValidating(true);
    const round = ++validationRound.current;
    const timer = setTimeout(async () => {
      try {
        const result = await api<ValidationReport>("POST", "/api/validate", JSON.parse(validationKey));
        if (round === validationRound.current) setReport(result);
      } catch (exc) {
        if (round === validationRound.current) {
          setReport({
            ok: false,
            problems: [{ code: exc instanceof ApiError ? exc.code : "Error", message: errorText(exc), nodes: [], connections: [] }],
          });
        }
      } finally {
        if (round === validationRound.current) setValidating(false);
      }
    }, 350);
    return () => clearTimeout(timer);
  }, [validationKey]);

  const problems: Problem[] = report?.problems ?? NO_PROBLEMS;
  const problemNodes = useMemo(() => {
    const map = new Map<string, string[]>();
    for (const p of problems) for (const id of p.nodes) map.set(id, [...(map.get(id) ?? []), p.message]);
    return map;
  }, [problems]);
  const problemConnections = useMemo(() => new Set(problems.flatMap((p) => p.connections)), [problems]);

  // -- the canvas ------------------------------------------------------------------------------
  const [flowNodes, setFlowNodes] = useState<PluginFlowNode[]>([]);
  const selectedNodeId = selection?.kind === "node" ? selection.id : null;
  const selectedEdgeIndex = selection?.kind === "edge" ? selection.index : null;
  useEffect(() => {
    if (!workflow) return;
    setFlowNodes((previous) => {
      const measured = new Map(previous.map((n) => [n.id, n.measured]));
      return toNodes(
        workflow,
        (node) => ({ problem: problemNodes.get(node.node_id)?.join("\n") }),
        selectedNodeId,
        positionsOf(workflow),
      ).map((n) => ({ ...n, measured: measured.get(n.id) }));
    });
  }, [workflow, problemNodes, selectedNodeId]);
  const flowEdges = useMemo(
    () => (workflow ? toEdges(workflow, { problemConnections, selectedIndex: selectedEdgeIndex }) : []),
    [workflow, problemConnections, selectedEdgeIndex],
  );

  const flowNodesRef = useRef(flowNodes);
  flowNodesRef.current = flowNodes;
  const onNodesChange = useCallback(
    (changes: NodeChange<PluginFlowNode>[]) => {
      // Removal goes through onDelete (it edits the definition); the rest is the canvas's.
      const next = applyNodeChanges(
        changes.filter((c) => c.type !== "remove"),
        flowNodesRef.current,
      );
      flowNodesRef.current = next;
      setFlowNodes(next);
      const moved = new Set(
        changes.filter((c) => c.type === "position" && c.dragging === false).map((c) => (c as { id: string }).id),
      );
      if (moved.size) {
        const positions = new Map(next.map((n) => [n.id, n.position]));
        update((current) => ({
          ...current,
          nodes: current.nodes.map((node) => {
            const at = moved.has(node.node_id) ? positions.get(node.node_id) : undefined;
            return at
              ? {
                  ...node,
                  ui_properties: { ...node.ui_properties, position: { x: Math.round(at.x), y: Math.round(at.y) } },
                }
              : node;
          }),
        }));
      }
    },
    [update],
  );

  const onConnect = useCallback(
    (connection: Connection) => {
      if (!workflow) return;
      const created: WorkflowConnection = {
        connection_id: "",
        source_node: connection.source,
        source_port: connection.sourceHandle && connection.sourceHandle !== ANY_PORT ? connection.sourceHandle : "",
        target_node: connection.target,
        target_port: connection.targetHandle && connection.targetHandle !== ANY_PORT ? connection.targetHandle : "",
        connection_type: connectionType,
        properties: {},
      };
      const index = workflow.connections.length;
      update((current) => ({ ...current, connections: [...current.connections, created] }));
      setSelection({ kind: "edge", index });
    },
    [workflow, connectionType, update],
  );

  const onDelete = useCallback(
    ({ nodes, edges }: { nodes: PluginFlowNode[]; edges: Edge[] }) => {
      const gone = new Set(nodes.map((n) => n.id));
      const goneEdges = new Set(edges.map((e) => (e.data as { index: number }).index));
      update((current) => ({
        ...current,
        nodes: current.nodes.filter((n) => !gone.has(n.node_id)),
        connections: current.connections.filter(
          (c, i) => !goneEdges.has(i) && !gone.has(c.source_node) && !gone.has(c.target_node),
        ),
      }));
      setSelection(null);
    },
    [update],
  );

  if (loadError) return <div className="page"><div className="error-box">{loadError}</div></div>;
  if (!workflow) return <div className="page muted">Loading…</div>;

  const isNew = baseVersion === 0;
  const selectedNode = selectedNodeId ? workflow.nodes.find((n) => n.node_id === selectedNodeId) ?? null : null;
  const selectedEdge = selectedEdgeIndex !== null ? workflow.connections[selectedEdgeIndex] ?? null : null;

  const save = async () => {
    setSaving(true);
    setSaveMessage(null);
    try {
      const id = workflow.workflow_id;
      const saved = await api<{ created: boolean; workflow: PluginWorkflow }>(
        "PUT",
        `${workflowPath(id)}?expected_version=${baseVersion}`,
        workflow,
      );
      setBaseVersion(saved.workflow.version);
      setWorkflow((current) => (current ? { ...current, version: saved.workflow.version } : current));
      setDirty(false);
      const text = `${saved.created ? "Registered" : "Saved"} version ${saved.workflow.version}`;
      setSaveMessage({ ok: true, text });
      if (workflowId !== id) {
        savedMessage = { workflowId: id, text };
        navigate(href("designer", id));
      }
    } catch (exc) {
      if (exc instanceof ApiError && Array.isArray(exc.details.problems)) {
        setReport({ ok: false, code: exc.code, problems: exc.details.problems as unknown as Problem[] });
      }
      setSaveMessage({ ok: false, text: errorText(exc) });
    } finally {
      setSaving(false);
    }
  };

  const relayout = () => {
    const measured: Record<string, Size> = {};
    for (const n of flowNodesRef.current) {
      if (n.measured?.width && n.measured.height) measured[n.id] = { width: n.measured.width, height: n.measured.height };
    }
    const laid = autoLayout(workflow, { measured });
    update((current) => ({
      ...current,
      nodes: current.nodes.map((node) => ({
        ...node,
        ui_properties: { ...node.ui_properties, position: laid[node.node_id] ?? { x: 0, y: 0 } },
      })),
    }));
    refit();
  };

  const status = validating ? (
    <span className="validation-status muted" data-testid="validation-status" data-state="checking">
      checking…
    </span>
  ) : report === null ? null : report.ok ? (
    <span className="validation-status ok" data-testid="validation-status" data-state="valid">
      ✓ valid{report.catalog_checked ? "" : " (no worker catalog yet)"}
    </span>
  ) : (
    <span className="validation-status bad" data-testid="validation-status" data-state="invalid">
      ⚠ {problems.length} problem{problems.length === 1 ? "" : "s"}
    </span>
  );

  return (
    <div className="designer">
      <div className="toolbar">
        <a className="crumb" href={href("")}>Definitions</a>
        <span className="crumb-sep">/</span>
        <strong>{isNew ? "New definition" : workflow.workflow_id}</strong>
        {!isNew && <span className="muted small">v{baseVersion}</span>}
        {dirty && <span className="dirty" data-testid="dirty-flag">● unsaved</span>}
        {status}
        <span className="spacer" />
        <button onClick={relayout} title="Lay out the graph left to right" data-testid="layout-button">
          Auto-layout
        </button>
        <button onClick={() => setShowImport(true)} data-testid="import-button">
          Import
        </button>
        <button onClick={() => downloadJson(`${workflow.workflow_id || "workflow"}.json`, workflow)} data-testid="export-button">
          Export JSON
        </button>
        <button
          onClick={() => setShowRun(true)}
          disabled={isNew || dirty}
          title={isNew || dirty ? "Save first" : "Start an execution"}
          data-testid="run-button"
        >
          ▶ Run
        </button>
        <button className="primary" onClick={save} disabled={saving || !workflow.workflow_id} data-testid="save-button">
          {saving ? "Saving…" : "Save"}
        </button>
      </div>
      {saveMessage && (
        <div className={saveMessage.ok ? "notice ok" : "notice bad"} data-testid="save-status" data-ok={String(saveMessage.ok)}>
          {saveMessage.text}
        </div>
      )}
      <div className="designer-body">
        <aside className="sidebar">
          <section>
            <h4>Definition</h4>
            <label className="form-label">Workflow id</label>
            <input
              type="text"
              value={workflow.workflow_id}
              disabled={!isNew}
              placeholder="e.g. nightly-import"
              data-testid="workflow-id-input"
              onChange={(e) => update((c) => ({ ...c, workflow_id: e.target.value }))}
            />
            <label className="form-label">Name</label>
            <input
              type="text"
              value={workflow.name}
              data-testid="workflow-name-input"
              onChange={(e) => update((c) => ({ ...c, name: e.target.value }))}
            />
            <label className="form-label">Description</label>
            <textarea
              rows={2}
              value={workflow.description}
              data-testid="workflow-description-input"
              onChange={(e) => update((c) => ({ ...c, description: e.target.value }))}
            />
            <label className="form-label">Execution mode</label>
            <select
              value={workflow.execution_mode}
              data-testid="execution-mode-select"
              onChange={(e) => update((c) => ({ ...c, execution_mode: e.target.value as ExecutionMode }))}
            >
              {MODES.map((m) => (
                <option key={m.value} value={m.value}>
                  {m.label}
                </option>
              ))}
            </select>
            <button className="link small" onClick={() => setShowGlobal((v) => !v)}>
              {showGlobal ? "▾" : "▸"} global configuration
            </button>
            {showGlobal && (
              <JsonObjectEditor
                value={workflow.global_configuration}
                testId="global-config-json"
                onChange={(value) => update((c) => ({ ...c, global_configuration: value }))}
              />
            )}
          </section>
          <AddNode
            plugins={catalog.plugins}
            published={catalog.published}
            error={catalog.error}
            workflow={workflow}
            onAdd={(node) => {
              update((c) => ({ ...c, nodes: [...c.nodes, node] }));
              setSelection({ kind: "node", id: node.node_id });
              refit();
            }}
          />
          <section>
            <h4>New connections</h4>
            <p className="help">Drag from an output (right) to an input (left). New connections are:</p>
            <select
              value={connectionType}
              data-testid="connection-type-select"
              onChange={(e) => setConnectionType(e.target.value as ConnectionType)}
            >
              {Object.entries(CONNECTION_TYPES).map(([value, kind]) => (
                <option key={value} value={value}>
                  {kind.label}
                </option>
              ))}
            </select>
            <AddConnection
              workflow={workflow}
              type={connectionType}
              onAdd={(conn) => {
                const index = workflow.connections.length;
                update((c) => ({ ...c, connections: [...c.connections, conn] }));
                setSelection({ kind: "edge", index });
              }}
            />
          </section>
        </aside>
        <div className="canvas-column">
          <div className="canvas" data-testid="designer-canvas">
            <ReactFlow<PluginFlowNode, Edge>
              nodes={flowNodes}
              edges={flowEdges}
              nodeTypes={nodeTypes}
              edgeTypes={edgeTypes}
              onNodesChange={onNodesChange}
              onConnect={onConnect}
              onDelete={onDelete}
              onNodeClick={(_, node) => setSelection({ kind: "node", id: node.id })}
              onEdgeClick={(_, edge) => setSelection({ kind: "edge", index: (edge.data as { index: number }).index })}
              onPaneClick={() => setSelection(null)}
              deleteKeyCode={["Delete", "Backspace"]}
              onInit={(instance) => {
                flow.current = instance;
              }}
              fitView
              fitViewOptions={FIT}
              minZoom={0.2}
              proOptions={{ hideAttribution: true }}
            >
              <Background gap={20} color="#e2e8f0" />
              <Controls showInteractive={false} />
              <HandleKeeper />
              <MiniMap pannable zoomable nodeColor={(n) => NODE_TYPES[(n as PluginFlowNode).data.node.node_type]?.color ?? "#94a3b8"} />
            </ReactFlow>
            {workflow.nodes.length === 0 && (
              <div className="canvas-empty">Add a node from the catalog on the left to start.</div>
            )}
          </div>
          <Legend />
          <ProblemList
            problems={problems}
            valid={report?.ok ?? false}
            onSelect={(p) => {
              if (p.nodes[0] && workflow.nodes.some((n) => n.node_id === p.nodes[0])) setSelection({ kind: "node", id: p.nodes[0] });
              else if (p.connections.length) setSelection({ kind: "edge", index: p.connections[0] });
            }}
          />
        </div>
        <aside className="inspector" data-testid="inspector">
          {selectedNode ? (
            <NodeInspector
              key={selectedNode.node_id}
              node={selectedNode}
              plugin={pluginById.get(selectedNode.plugin_id)}
              problems={problemNodes.get(selectedNode.node_id) ?? []}
              onChange={(changed) => {
                const oldId = selectedNode.node_id;
                update((c) => ({
                  ...c,
                  nodes: c.nodes.map((n) => (n.node_id === oldId ? changed : n)),
                  connections:
                    changed.node_id === oldId
                      ? c.connections
                      : c.connections.map((conn) => ({
                          ...conn,
                          source_node: conn.source_node === oldId ? changed.node_id : conn.source_node,
                          target_node: conn.target_node === oldId ? changed.node_id : conn.target_node,
                        })),
                }));
                if (changed.node_id !== oldId) setSelection({ kind: "node", id: changed.node_id });
              }}
              onDelete={() => {
                const id = selectedNode.node_id;
                update((c) => ({
                  ...c,
                  nodes: c.nodes.filter((n) => n.node_id !== id),
                  connections: c.connections.filter((conn) => conn.source_node !== id && conn.target_node !== id),
                }));
                setSelection(null);
              }}
            />
          ) : selectedEdge && selectedEdgeIndex !== null ? (
            <EdgeInspector
              key={selectedEdgeIndex}
              index={selectedEdgeIndex}
              connection={selectedEdge}
              workflow={workflow}
              problems={problems.filter((p) => p.connections.includes(selectedEdgeIndex)).map((p) => p.message)}
              onChange={(changed) =>
                update((c) => ({
                  ...c,
                  connections: c.connections.map((conn, i) => (i === selectedEdgeIndex ? changed : conn)),
                }))
              }
              onDelete={() => {
                update((c) => ({ ...c, connections: c.connections.filter((_, i) => i !== selectedEdgeIndex) }));
                setSelection(null);
              }}
            />
          ) : (
            <div className="inspector-hint">
              <h4>Inspector</h4>
              <p className="help">
                Select a node to edit its configuration, or a connection to set its type and condition. Delete
                removes the selection.
              </p>
              <p className="help">
                {workflow.nodes.length} nodes · {workflow.connections.length} connections
              </p>
            </div>
          )}
        </aside>
      </div>
      {showImport && (
        <ImportDialog
          onClose={() => setShowImport(false)}
          onImport={(imported) => {
            setWorkflow(withPositions(imported));
            refit();
            setDirty(true);
            setSelection(null);
            if (imported.workflow_id !== workflow.workflow_id) setBaseVersion(0);
            setShowImport(false);
          }}
        />
      )}
      {showRun && <RunDialog workflowId={workflow.workflow_id} onClose={() => setShowRun(false)} />}
    </div>
  );
}

function ProblemList({
  problems,
  valid,
  onSelect,
}: {
  problems: Problem[];
  valid: boolean;
  onSelect: (problem: Problem) => void;
}) {
  if (valid) return null;
  if (problems.length === 0) return null;
  return (
    <div className="problems" data-testid="validation-problems">
      <div className="problems-title">The engine says:</div>
      <ul>
        {problems.map((p, i) => (
          <li key={i} data-testid="problem" data-code={p.code} onClick={() => onSelect(p)}>
            <span className="problem-code">{p.code}</span> {p.message}
          </li>
        ))}
      </ul>
    </div>
  );
}

function AddNode({
  plugins,
  published,
  error,
  workflow,
  onAdd,
}: {
  plugins: PluginInfo[];
  published: boolean;
  error: string | null;
  workflow: PluginWorkflow;
  onAdd: (node: WorkflowNode) => void;
}) {
  const [pluginId, setPluginId] = useState("");
  const [nodeId, setNodeId] = useState("");
  const [name, setName] = useState("");
  const [nodeType, setNodeType] = useState<NodeType>("processor");
  const taken = new Set(workflow.nodes.map((n) => n.node_id));
  const plugin = plugins.find((p) => p.plugin_id === pluginId);
  const choose = (id: string) => {
    setPluginId(id);
    const chosen = plugins.find((p) => p.plugin_id === id);
    if (chosen) {
      setNodeType(chosen.node_type);
      setNodeId(uniqueId(id, taken));
    }
  };
  const add = () => {
    if (!plugin) return;
    const id = nodeId.trim() || uniqueId(plugin.plugin_id, taken);
    const right = workflow.nodes.reduce((max, n) => {
      const p = n.ui_properties.position as { x?: number } | undefined;
      return Math.max(max, typeof p?.x === "number" ? p.x : 0);
    }, -260);
    const ys = workflow.nodes.map((n) => (n.ui_properties.position as { y?: number } | undefined)?.y ?? 0);
    const y = ys.length ? Math.round(ys.reduce((a, b) => a + b, 0) / ys.length) : 80;
    onAdd({
      node_id: id,
      name: name.trim(),
      description: "",
      plugin_id: plugin.plugin_id,
      node_type: nodeType,
      configuration: {},
      ui_properties: { position: { x: right + 280, y } },
      input_ports: [...plugin.input_ports],
      output_ports: [...plugin.output_ports],
    });
    setNodeId("");
    setName("");
    setPluginId("");
  };
  const workerPlugins = plugins.filter((p) => !p.engine);
  const enginePlugins = plugins.filter((p) => p.engine);
  return (
    <section data-testid="add-node">
      <h4>Add a node</h4>
      {error && <div className="error-box small">{error}</div>}
      {!published && !error && (
        <p className="help warn">No worker has published a catalog on this task queue yet: only the engine's own nodes are listed.</p>
      )}
      <label className="form-label">Plugin</label>
      <select value={pluginId} data-testid="add-node-plugin-select" onChange={(e) => choose(e.target.value)}>
        <option value="">— choose a plugin —</option>
        <optgroup label="Plugins (workers)">
          {workerPlugins.map((p) => (
            <option key={p.plugin_id} value={p.plugin_id}>
              {p.plugin_id}
            </option>
          ))}
        </optgroup>
        <optgroup label="Engine nodes">
          {enginePlugins.map((p) => (
            <option key={p.plugin_id} value={p.plugin_id}>
              {p.plugin_id}
            </option>
          ))}
        </optgroup>
      </select>
      {plugin?.description && <p className="help">{plugin.description}</p>}
      <div className="form-grid">
        <div>
          <label className="form-label">Node id</label>
          <input type="text" value={nodeId} data-testid="add-node-id-input" onChange={(e) => setNodeId(e.target.value)} />
        </div>
        <div>
          <label className="form-label">Name</label>
          <input type="text" value={name} data-testid="add-node-name-input" onChange={(e) => setName(e.target.value)} />
        </div>
      </div>
      <label className="form-label">Type</label>
      <select value={nodeType} data-testid="add-node-type-select" onChange={(e) => setNodeType(e.target.value as NodeType)}>
        {Object.entries(NODE_TYPES).map(([value, kind]) => (
          <option key={value} value={value}>
            {kind.label}
          </option>
        ))}
      </select>
      <button className="primary block" disabled={!plugin} onClick={add} data-testid="add-node-button">
        + Add node
      </button>
    </section>
  );
}

function AddConnection({
  workflow,
  type,
  onAdd,
}: {
  workflow: PluginWorkflow;
  type: ConnectionType;
  onAdd: (connection: WorkflowConnection) => void;
}) {
  const [open, setOpen] = useState(false);
  const [source, setSource] = useState("");
  const [target, setTarget] = useState("");
  const [sourcePort, setSourcePort] = useState("");
  const [targetPort, setTargetPort] = useState("");
  const sourceNode = workflow.nodes.find((n) => n.node_id === source);
  const targetNode = workflow.nodes.find((n) => n.node_id === target);
  if (!open) {
    return (
      <button className="link small" onClick={() => setOpen(true)} data-testid="add-connection-open">
        ▸ or connect by form
      </button>
    );
  }
  return (
    <div className="subform" data-testid="add-connection">
      <div className="form-grid">
        <div>
          <label className="form-label">From</label>
          <select value={source} data-testid="add-connection-source" onChange={(e) => { setSource(e.target.value); setSourcePort(""); }}>
            <option value="">—</option>
            {workflow.nodes.map((n) => (
              <option key={n.node_id} value={n.node_id}>
                {n.node_id}
              </option>
            ))}
          </select>
          {sourceNode && sourceNode.output_ports.length > 0 && (
            <select value={sourcePort} onChange={(e) => setSourcePort(e.target.value)} data-testid="add-connection-source-port">
              <option value="">(whole output)</option>
              {sourceNode.output_ports.map((p) => (
                <option key={p}>{p}</option>
              ))}
            </select>
          )}
        </div>
        <div>
          <label className="form-label">To</label>
          <select value={target} data-testid="add-connection-target" onChange={(e) => { setTarget(e.target.value); setTargetPort(""); }}>
            <option value="">—</option>
            {workflow.nodes.map((n) => (
              <option key={n.node_id} value={n.node_id}>
                {n.node_id}
              </option>
            ))}
          </select>
          {targetNode && targetNode.input_ports.length > 0 && (
            <select value={targetPort} onChange={(e) => setTargetPort(e.target.value)} data-testid="add-connection-target-port">
              <option value="">(by source id)</option>
              {targetNode.input_ports.map((p) => (
                <option key={p}>{p}</option>
              ))}
            </select>
          )}
        </div>
      </div>
      <button
        className="block"
        disabled={!source || !target}
        data-testid="add-connection-button"
        onClick={() => {
          onAdd({
            connection_id: "",
            source_node: source,
            source_port: sourcePort,
            target_node: target,
            target_port: targetPort,
            connection_type: type,
            properties: {},
          });
          setSource("");
          setTarget("");
        }}
      >
        + Connect ({CONNECTION_TYPES[type].label})
      </button>
    </div>
  );
}

function portsText(ports: string[]): string {
  return ports.join(", ");
}

function parsePorts(text: string): string[] {
  return text
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean);
}

function NodeInspector({
  node,
  plugin,
  problems,
  onChange,
  onDelete,
}: {
  node: WorkflowNode;
  plugin: PluginInfo | undefined;
  problems: string[];
  onChange: (node: WorkflowNode) => void;
  onDelete: () => void;
}) {
  const [inputs, setInputs] = useState(portsText(node.input_ports));
  const [outputs, setOutputs] = useState(portsText(node.output_ports));
  const kind = NODE_TYPES[node.node_type] ?? NODE_TYPES.custom;
  const schema = plugin ? (node.node_type === "source" && plugin.source && !plugin.function ? plugin.source_config_schema : plugin.config_schema ?? plugin.source_config_schema) : null;
  return (
    <div className="inspector-panel" data-testid="node-panel">
      <h4>
        <span className="type-dot" style={{ background: kind.color }}>
          <TypeIcon type={node.node_type} size={13} />
        </span>{" "}
        Node <code>{node.node_id}</code>
      </h4>
      {problems.length > 0 && (
        <ul className="inline-problems" data-testid="node-problems">
          {problems.map((p, i) => (
            <li key={i}>{p}</li>
          ))}
        </ul>
      )}
      <label className="form-label">Node id</label>
      <input type="text" value={node.node_id} data-testid="node-id-input" onChange={(e) => onChange({ ...node, node_id: e.target.value })} />
      <label className="form-label">Name</label>
      <input type="text" value={node.name} data-testid="node-name-input" onChange={(e) => onChange({ ...node, name: e.target.value })} />
      <label className="form-label">Type</label>
      <select value={node.node_type} data-testid="node-type-select" onChange={(e) => onChange({ ...node, node_type: e.target.value as NodeType })}>
        {Object.entries(NODE_TYPES).map(([value, k]) => (
          <option key={value} value={value}>
            {k.label}
          </option>
        ))}
      </select>
      <label className="form-label">Plugin</label>
      <input type="text" value={node.plugin_id} data-testid="node-plugin-input" onChange={(e) => onChange({ ...node, plugin_id: e.target.value })} />
      {!plugin && <p className="help warn">Not in the catalog of this task queue.</p>}
      <div className="form-grid">
        <div>
          <label className="form-label">Input ports</label>
          <input
            type="text"
            value={inputs}
            placeholder="any"
            data-testid="node-inputs-input"
            onChange={(e) => {
              setInputs(e.target.value);
              onChange({ ...node, input_ports: parsePorts(e.target.value) });
            }}
          />
        </div>
        <div>
          <label className="form-label">Output ports</label>
          <input
            type="text"
            value={outputs}
            placeholder="any"
            data-testid="node-outputs-input"
            onChange={(e) => {
              setOutputs(e.target.value);
              onChange({ ...node, output_ports: parsePorts(e.target.value) });
            }}
          />
        </div>
      </div>
      <h5>Configuration</h5>
      {plugin ? (
        <SchemaForm schema={schema} value={node.configuration} onChange={(configuration) => onChange({ ...node, configuration })} />
      ) : null}
      <details open={!schema?.properties}>
        <summary className="small">Configuration as JSON (also retry, timeout, optional…)</summary>
        <JsonObjectEditor value={node.configuration} testId="config-json" onChange={(configuration) => onChange({ ...node, configuration })} />
      </details>
      <label className="form-label">Description</label>
      <textarea rows={2} value={node.description} onChange={(e) => onChange({ ...node, description: e.target.value })} />
      <button className="danger block" onClick={onDelete} data-testid="delete-node-button">
        Delete node
      </button>
    </div>
  );
}

function EdgeInspector({
  index,
  connection,
  workflow,
  problems,
  onChange,
  onDelete,
}: {
  index: number;
  connection: WorkflowConnection;
  workflow: PluginWorkflow;
  problems: string[];
  onChange: (connection: WorkflowConnection) => void;
  onDelete: () => void;
}) {
  const props = connection.properties;
  const setProp = (key: string, value: Json | undefined) => {
    const copy: JsonObject = { ...props };
    if (value === undefined) delete copy[key];
    else copy[key] = value;
    onChange({ ...connection, properties: copy });
  };
  const source = workflow.nodes.find((n) => n.node_id === connection.source_node);
  const target = workflow.nodes.find((n) => n.node_id === connection.target_node);
  return (
    <div className="inspector-panel" data-testid="edge-panel" data-index={index}>
      <h4>
        Connection <code>{connection.source_node}</code> → <code>{connection.target_node}</code>
      </h4>
      {problems.length > 0 && (
        <ul className="inline-problems" data-testid="edge-problems">
          {problems.map((p, i) => (
            <li key={i}>{p}</li>
          ))}
        </ul>
      )}
      <label className="form-label">Type</label>
      <select
        value={connection.connection_type}
        data-testid="edge-type-select"
        onChange={(e) => {
          const type = e.target.value as ConnectionType;
          const copy = { ...props };
          if (type !== "control") {
            delete copy.condition;
            delete copy.default;
          }
          onChange({ ...connection, connection_type: type, properties: copy });
        }}
      >
        {Object.entries(CONNECTION_TYPES).map(([value, kind]) => (
          <option key={value} value={value}>
            {kind.label}
          </option>
        ))}
      </select>
      {connection.connection_type === "control" && (
        <>
          <label className="form-label">Condition (CEL, on the source's output)</label>
          <input
            type="text"
            value={typeof props.condition === "string" ? props.condition : ""}
            placeholder="e.g. score >= 80"
            data-testid="edge-condition-input"
            disabled={props.default === true}
            onChange={(e) => setProp("condition", e.target.value === "" ? undefined : e.target.value)}
          />
          <label className="checkbox">
            <input
              type="checkbox"
              checked={props.default === true}
              data-testid="edge-default-checkbox"
              onChange={(e) => {
                const copy = { ...props };
                if (e.target.checked) {
                  copy.default = true;
                  delete copy.condition;
                } else delete copy.default;
                onChange({ ...connection, properties: copy });
              }}
            />
            default route (taken when no condition holds)
          </label>
        </>
      )}
      {connection.connection_type === "event" && (
        <>
          <label className="form-label">Event type (empty: any)</label>
          <input
            type="text"
            value={typeof props.event_type === "string" ? props.event_type : ""}
            data-testid="edge-event-type-input"
            onChange={(e) => setProp("event_type", e.target.value === "" ? undefined : e.target.value)}
          />
        </>
      )}
      <label className="checkbox">
        <input
          type="checkbox"
          checked={props.on === "error"}
          data-testid="edge-on-error-checkbox"
          onChange={(e) => setProp("on", e.target.checked ? "error" : undefined)}
        />
        error route (taken only when the source fails)
      </label>
      <div className="form-grid">
        <div>
          <label className="form-label">Source port</label>
          {source && source.output_ports.length > 0 ? (
            <select value={connection.source_port} onChange={(e) => onChange({ ...connection, source_port: e.target.value })}>
              <option value="">(whole output)</option>
              {source.output_ports.map((p) => (
                <option key={p}>{p}</option>
              ))}
            </select>
          ) : (
            <input type="text" value={connection.source_port} placeholder="(whole output)" onChange={(e) => onChange({ ...connection, source_port: e.target.value })} />
          )}
        </div>
        <div>
          <label className="form-label">Target port</label>
          {target && target.input_ports.length > 0 ? (
            <select value={connection.target_port} onChange={(e) => onChange({ ...connection, target_port: e.target.value })}>
              <option value="">(source id)</option>
              {target.input_ports.map((p) => (
                <option key={p}>{p}</option>
              ))}
            </select>
          ) : (
            <input type="text" value={connection.target_port} placeholder="(source id)" onChange={(e) => onChange({ ...connection, target_port: e.target.value })} />
          )}
        </div>
      </div>
      <label className="form-label">Connection id (optional)</label>
      <input type="text" value={connection.connection_id} onChange={(e) => onChange({ ...connection, connection_id: e.target.value })} />
      <button className="danger block" onClick={onDelete} data-testid="delete-edge-button">
        Delete connection
      </button>
    </div>
  );
}

function JsonObjectEditor({
  value,
  onChange,
  testId,
}: {
  value: JsonObject;
  onChange: (value: JsonObject) => void;
  testId: string;
}) {
  const [text, setText] = useState(JSON.stringify(value, null, 2));
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setText((current) => {
      try {
        if (JSON.stringify(JSON.parse(current)) === JSON.stringify(value)) return current;
      } catch {
        /* mid-edit: replaced by the outside change below */
      }
      return JSON.stringify(value, null, 2);
    });
    setError(null);
  }, [value]);
  return (
    <>
      <textarea
        className={`json-input ${error ? "invalid" : ""}`}
        rows={Math.min(12, Math.max(3, text.split("\n").length))}
        value={text}
        spellCheck={false}
        data-testid={testId}
        onChange={(e) => {
          setText(e.target.value);
          try {
            const parsed = JSON.parse(e.target.value || "{}") as Json;
            if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("must be a JSON object");
            setError(null);
            onChange(parsed);
          } catch (exc) {
            setError((exc as Error).message);
          }
        }}
      />
      {error && <div className="field-error">{error}</div>}
    </>
  );
}

function ImportDialog({ onClose, onImport }: { onClose: () => void; onImport: (workflow: PluginWorkflow) => void }) {
  const [text, setText] = useState("");
  const [error, setError] = useState<string | null>(null);
  const apply = (source: string) => {
    try {
      const parsed = JSON.parse(source) as unknown;
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("a definition is a JSON object");
      onImport(normalizeWorkflow(parsed));
    } catch (exc) {
      setError(`cannot import: ${(exc as Error).message}`);
    }
  };
  return (
    <Modal title="Import a definition" onClose={onClose} testId="import-dialog">
      <label className="form-label">From a file</label>
      <input
        type="file"
        accept=".json,application/json"
        data-testid="import-file-input"
        onChange={async (e) => {
          const file = e.target.files?.[0];
          if (file) apply(await file.text());
        }}
      />
      <label className="form-label">Or paste JSON</label>
      <textarea
        className="json-input"
        rows={12}
        value={text}
        spellCheck={false}
        placeholder='{"workflow_id": "...", "nodes": [...], "connections": [...]}'
        data-testid="import-textarea"
        onChange={(e) => setText(e.target.value)}
      />
      {error && <div className="error-box">{error}</div>}
      <div className="modal-actions">
        <button onClick={onClose}>Cancel</button>
        <button className="primary" disabled={!text.trim()} onClick={() => apply(text)} data-testid="import-apply-button">
          Import
        </button>
      </div>
    </Modal>
  );
}
