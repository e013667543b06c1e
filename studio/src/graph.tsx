// Drawing a definition: nodes by type (colour, icon, label), declared ports as handles
// (inputs left, outputs right), connections by type (DataFlow solid, Control dashed with its
// condition, Event dotted, Dependency thin grey, error routes red), each routed around the
// nodes it does not connect (routing.ts).

import {
  BaseEdge,
  Handle,
  MarkerType,
  Position as Side,
  useStore,
  useUpdateNodeInternals,
  type Edge,
  type EdgeProps,
  type Node,
  type NodeChange,
  type NodeProps,
  type ReactFlowState,
} from "@xyflow/react";
import { useCallback, useEffect, useMemo, useState, type CSSProperties, type ReactNode } from "react";
import { readablePositions } from "./layout";
import { routeEdge, routeSpan, type Box } from "./routing";
import type {
  ConnectionType,
  NodeStatus,
  NodeType,
  PluginWorkflow,
  Position,
  WorkflowConnection,
  WorkflowNode,
} from "./types";

/** The handle id of a node without declared ports (connections name no port). */
export const ANY_PORT = "__any__";

export const NODE_TYPES: Record<NodeType, { label: string; color: string }> = {
  source: { label: "Source", color: "#16a34a" },
  processor: { label: "Processor", color: "#2563eb" },
  sink: { label: "Sink", color: "#7c3aed" },
  decision: { label: "Decision", color: "#d97706" },
  aggregator: { label: "Aggregator", color: "#0d9488" },
  splitter: { label: "Splitter", color: "#db2777" },
  custom: { label: "Custom", color: "#64748b" },
};

// Icons as SVG (no font needs to have the glyphs).
const ICON_PATHS: Record<NodeType, ReactNode> = {
  source: <polygon points="3,2 11,7 3,12" fill="currentColor" stroke="none" />,
  processor: (
    <>
      <rect x="2.5" y="2.5" width="9" height="9" rx="2" />
      <path d="M5 7h4M7 5v4" />
    </>
  ),
  sink: (
    <>
      <path d="M7 1.5v6M4.5 5 7 7.5 9.5 5" />
      <path d="M2 9v3h10V9" />
    </>
  ),
  decision: <polygon points="7,1.5 12.5,7 7,12.5 1.5,7" />,
  aggregator: <path d="M1.5 2.5 7 7 1.5 11.5M7 7h5.5" />,
  splitter: <path d="M1.5 7H7l5.5-4.5M7 7l5.5 4.5" />,
  custom: <path d="M7 1.5 8.6 5.4 12.5 7 8.6 8.6 7 12.5 5.4 8.6 1.5 7 5.4 5.4Z" />,
};

export function TypeIcon({ type, size = 14 }: { type: NodeType; size?: number }) {
  return (
    <svg
      width={size}
      height={size}
      viewBox="0 0 14 14"
      fill="none"
      stroke="currentColor"
      strokeWidth={1.6}
      strokeLinecap="round"
      strokeLinejoin="round"
      aria-hidden
    >
      {ICON_PATHS[type] ?? ICON_PATHS.custom}
    </svg>
  );
}

export const CONNECTION_TYPES: Record<ConnectionType, { label: string; color: string }> = {
  data_flow: { label: "DataFlow", color: "#334155" },
  control: { label: "Control", color: "#7c3aed" },
  event: { label: "Event", color: "#d97706" },
  dependency: { label: "Dependency", color: "#9ca3af" },
};

export const ERROR_ROUTE_COLOR = "#dc2626";

export const STATUS_LABELS: Record<NodeStatus, string> = {
  pending: "pending",
  running: "running",
  completed: "completed",
  failed: "failed",
  skipped: "skipped",
  cancelled: "cancelled",
};

export interface PluginNodeData extends Record<string, unknown> {
  node: WorkflowNode;
  status?: NodeStatus;
  problem?: string;
  attempts?: number;
  detail?: string;
}

export type PluginFlowNode = Node<PluginNodeData, "plugin">;

function PortRow({ port, side }: { port: string; side: "in" | "out" }) {
  return (
    <div className={`wf-port wf-port-${side}`}>
      <span className="wf-port-label">{port}</span>
    </div>
  );
}

export function PluginNodeView({ data, selected }: NodeProps<PluginFlowNode>) {
  const { node, status, problem } = data;
  const kind = NODE_TYPES[node.node_type] ?? NODE_TYPES.custom;
  const inputs = node.input_ports;
  const outputs = node.output_ports;
  const rows = Math.max(inputs.length, outputs.length);
  const classes = [
    "wf-node",
    `wf-type-${node.node_type}`,
    status ? `wf-status-${status}` : "wf-status-none",
    problem ? "wf-problem" : "",
    selected ? "wf-selected" : "",
  ];
  return (
    <div
      className={classes.join(" ")}
      style={{ "--type-color": kind.color } as CSSProperties}
      data-testid={`node-${node.node_id}`}
      data-status={status ?? ""}
      data-type={node.node_type}
      title={problem ?? node.description ?? ""}
    >
      <div className="wf-node-header">
        <span className="wf-node-icon">
          <TypeIcon type={node.node_type} />
        </span>
        <span className="wf-node-kind">{kind.label}</span>
        {status && (
          <span className="wf-node-status" data-testid={`node-status-${node.node_id}`}>
            {status}
            {data.attempts && data.attempts > 1 ? ` ×${data.attempts}` : ""}
          </span>
        )}
        {problem && !status && (
          <span className="wf-node-warning" title={problem}>
            ⚠
          </span>
        )}
      </div>
      <div className="wf-node-body">
        <div className="wf-node-title">{node.name || node.node_id}</div>
        <div className="wf-node-sub">
          {node.name && node.name !== node.node_id ? `${node.node_id} · ` : ""}
          {node.plugin_id || "(no plugin)"}
        </div>
        {data.detail && <div className="wf-node-detail">{data.detail}</div>}
      </div>
      {rows > 0 && (
        <div className="wf-node-ports">
          <div className="wf-ports-col">
            {inputs.map((port) => (
              <div className="wf-port-slot" key={port}>
                <Handle
                  type="target"
                  position={Side.Left}
                  id={port}
                  className="wf-handle wf-handle-in"
                  data-testid={`handle-in-${node.node_id}-${port}`}
                />
                <PortRow port={port} side="in" />
              </div>
            ))}
          </div>
          <div className="wf-ports-col wf-ports-out">
            {outputs.map((port) => (
              <div className="wf-port-slot" key={port}>
                <PortRow port={port} side="out" />
                <Handle
                  type="source"
                  position={Side.Right}
                  id={port}
                  className="wf-handle wf-handle-out"
                  data-testid={`handle-out-${node.node_id}-${port}`}
                />
              </div>
            ))}
          </div>
        </div>
      )}
      {/* No port named: the whole output, or the input keyed by the source's id. With
          declared ports this handle sits at the header, else mid-height. */}
      <Handle
        type="target"
        position={Side.Left}
        id={ANY_PORT}
        className={`wf-handle wf-handle-in wf-handle-any ${inputs.length ? "wf-handle-top" : ""}`}
        title="any input (keyed by the source's id)"
        data-testid={`handle-in-${node.node_id}`}
      />
      <Handle
        type="source"
        position={Side.Right}
        id={ANY_PORT}
        className={`wf-handle wf-handle-out wf-handle-any ${outputs.length ? "wf-handle-top" : ""}`}
        title="the whole output"
        data-testid={`handle-out-${node.node_id}`}
      />
    </div>
  );
}

export const nodeTypes = { plugin: PluginNodeView };

/** The drawn boxes (flow coordinates) of the measured nodes across x from left to right. */
function nodeBoxes(state: ReactFlowState, left: number, right: number): Box[] {
  const boxes: Box[] = [];
  for (const node of state.nodeLookup.values()) {
    const { width, height } = node.measured;
    if (node.hidden || !width || !height) continue;
    const { x, y } = node.internals.positionAbsolute;
    if (x + width > left && x < right) boxes.push({ id: node.id, left: x, top: y, right: x + width, bottom: y + height });
  }
  return boxes;
}

function sameBoxes(a: Box[], b: Box[]): boolean {
  return (
    a.length === b.length &&
    a.every((box, i) => {
      const other = b[i];
      return (
        box.id === other.id &&
        box.left === other.left &&
        box.top === other.top &&
        box.right === other.right &&
        box.bottom === other.bottom
      );
    })
  );
}

/** An edge that goes around the nodes it does not connect (a curve where the way is clear). */
export function RoutedEdge(props: EdgeProps) {
  const { source, target, sourceX, sourceY, targetX, targetY } = props;
  // Only the nodes across the edge's span: moving any other node does not route it again.
  const { left, right } = routeSpan({ x: sourceX, y: sourceY }, { x: targetX, y: targetY });
  const selectBoxes = useCallback((state: ReactFlowState) => nodeBoxes(state, left, right), [left, right]);
  const boxes = useStore(selectBoxes, sameBoxes);
  const route = useMemo(
    () => routeEdge({ x: sourceX, y: sourceY }, { x: targetX, y: targetY }, source, target, boxes),
    [sourceX, sourceY, targetX, targetY, source, target, boxes],
  );
  return (
    <BaseEdge
      id={props.id}
      path={route.path}
      labelX={route.labelX}
      labelY={route.labelY}
      label={props.label}
      labelStyle={props.labelStyle}
      labelShowBg={props.labelShowBg}
      labelBgStyle={props.labelBgStyle}
      labelBgPadding={props.labelBgPadding}
      labelBgBorderRadius={props.labelBgBorderRadius}
      style={props.style}
      markerStart={props.markerStart}
      markerEnd={props.markerEnd}
      interactionWidth={props.interactionWidth}
    />
  );
}

export const edgeTypes = { routed: RoutedEdge };

/** Label and colours of a connection, by type; error routes red. */
export function connectionLook(conn: WorkflowConnection): {
  style: CSSProperties;
  label?: string;
  color: string;
} {
  const kind = CONNECTION_TYPES[conn.connection_type] ?? CONNECTION_TYPES.data_flow;
  const props = conn.properties ?? {};
  const onError = props.on === "error";
  const color = onError ? ERROR_ROUTE_COLOR : kind.color;
  const style: CSSProperties = { stroke: color, strokeWidth: 2 };
  let label: string | undefined;
  switch (conn.connection_type) {
    case "control":
      style.strokeDasharray = "8 5";
      if (typeof props.condition === "string" && props.condition) label = props.condition;
      else if (props.default === true) label = "default";
      break;
    case "event":
      style.strokeDasharray = "1 6";
      style.strokeLinecap = "round";
      style.strokeWidth = 3;
      if (typeof props.event_type === "string" && props.event_type) label = `event: ${props.event_type}`;
      break;
    case "dependency":
      style.strokeWidth = 1;
      break;
    default:
      break;
  }
  if (onError) label = label ? `on error · ${label}` : "on error";
  return { style, label, color };
}

export interface EdgeOptions {
  problemConnections?: Set<number>;
  selectedIndex?: number | null;
  animateInto?: Set<string>;
}

export function toEdges(workflow: PluginWorkflow, options: EdgeOptions = {}): Edge[] {
  const known = new Set(workflow.nodes.map((n) => n.node_id));
  const edges: Edge[] = [];
  workflow.connections.forEach((conn, index) => {
    if (!known.has(conn.source_node) || !known.has(conn.target_node)) return;
    const look = connectionLook(conn);
    const problem = options.problemConnections?.has(index) ?? false;
    const style = problem
      ? { ...look.style, stroke: "#f59e0b", strokeWidth: 4 }
      : look.style;
    edges.push({
      id: `e${index}`,
      type: "routed",
      source: conn.source_node,
      target: conn.target_node,
      sourceHandle: conn.source_port || ANY_PORT,
      targetHandle: conn.target_port || ANY_PORT,
      label: problem ? `⚠ ${look.label ?? ""}`.trim() : look.label,
      style,
      selected: options.selectedIndex === index,
      animated: options.animateInto?.has(conn.target_node) ?? false,
      markerEnd: { type: MarkerType.ArrowClosed, color: problem ? "#f59e0b" : look.color },
      labelStyle: { fontSize: 11, fill: look.color, fontWeight: 600 },
      labelBgStyle: { fill: "#ffffff", fillOpacity: 0.92 },
      labelBgPadding: [4, 2],
      labelBgBorderRadius: 3,
      className: `wf-edge wf-edge-${conn.connection_type}${conn.properties?.on === "error" ? " wf-edge-error" : ""}`,
      domAttributes: {
        "data-testid": `edge-${index}`,
        "data-connection-type": conn.connection_type,
      } as Edge["domAttributes"],
      data: { index },
    });
  });
  return edges;
}

/** The definition's nodes for React Flow, at ``positions`` (by default, readable ones). */
export function toNodes(
  workflow: PluginWorkflow,
  extra: (node: WorkflowNode) => Partial<PluginNodeData> = () => ({}),
  selectedId?: string | null,
  positions: Record<string, Position> = readablePositions(workflow),
): PluginFlowNode[] {
  const seen = new Set<string>();
  const nodes: PluginFlowNode[] = [];
  for (const node of workflow.nodes) {
    if (seen.has(node.node_id)) continue; // a duplicate id: validation reports it
    seen.add(node.node_id);
    nodes.push({
      id: node.node_id,
      type: "plugin",
      position: positions[node.node_id] ?? { x: 0, y: 0 },
      data: { node, ...extra(node) },
      selected: selectedId === node.node_id,
    });
  }
  return nodes;
}

export function Legend({ statuses = false }: { statuses?: boolean }) {
  return (
    <div className="wf-legend" data-testid="legend">
      <div className="wf-legend-group">
        {Object.entries(NODE_TYPES).map(([key, kind]) => (
          <span key={key} className="wf-legend-item">
            <span className="wf-legend-swatch" style={{ background: kind.color }}>
              <TypeIcon type={key as NodeType} size={12} />
            </span>
            {kind.label}
          </span>
        ))}
      </div>
      <div className="wf-legend-group">
        {Object.entries(CONNECTION_TYPES).map(([key, kind]) => {
          const look = connectionLook({
            connection_id: "",
            source_node: "",
            source_port: "",
            target_node: "",
            target_port: "",
            connection_type: key as ConnectionType,
            properties: {},
          });
          return (
            <span key={key} className="wf-legend-item">
              <svg width="34" height="10" aria-hidden>
                <line x1="1" y1="5" x2="33" y2="5" style={look.style} />
              </svg>
              {kind.label}
            </span>
          );
        })}
        <span className="wf-legend-item">
          <svg width="34" height="10" aria-hidden>
            <line x1="1" y1="5" x2="33" y2="5" stroke={ERROR_ROUTE_COLOR} strokeWidth={2} />
          </svg>
          on error
        </span>
      </div>
      {statuses && (
        <div className="wf-legend-group">
          {(Object.keys(STATUS_LABELS) as NodeStatus[]).map((status) => (
            <span key={status} className="wf-legend-item">
              <span className={`wf-legend-status wf-status-${status}`} />
              {status}
            </span>
          ))}
        </div>
      )}
    </div>
  );
}

function unmeasuredHandles(state: ReactFlowState): string {
  const ids: string[] = [];
  for (const node of state.nodeLookup.values()) {
    if (!node.hidden && node.measured.width && node.measured.height && !node.internals.handleBounds) ids.push(node.id);
  }
  return ids.join("\n");
}

/**
 * Measures again the handles of nodes that have a size but no handles. Views rebuild their
 * nodes as data arrives, keeping the measured sizes (useMeasuredNodes, the designer): a
 * rebuild that lands between React Flow's measuring of a node and the size reaching us gives
 * React Flow a node with a size and without handles, which it never measures again (its
 * size did not change), so no edge of it is drawn (seen on the monitor of a run that had
 * already ended: every event at once). Render inside <ReactFlow>.
 */
export function HandleKeeper() {
  const missing = useStore(unmeasuredHandles);
  const updateNodeInternals = useUpdateNodeInternals();
  useEffect(() => {
    if (missing) updateNodeInternals(missing.split("\n"));
  }, [missing, updateNodeInternals]);
  return null;
}

/** Read-only graphs rebuild their nodes on every update; this keeps React Flow's measured
 * sizes across rebuilds, so nodes are not hidden and re-measured each time. */
export function useMeasuredNodes<N extends Node>(nodes: N[]): [N[], (changes: NodeChange<N>[]) => void] {
  const [sizes, setSizes] = useState<Record<string, { width: number; height: number }>>({});
  const onNodesChange = useCallback((changes: NodeChange<N>[]) => {
    const measured: Record<string, { width: number; height: number }> = {};
    for (const change of changes) {
      if (change.type === "dimensions" && change.dimensions) measured[change.id] = change.dimensions;
    }
    if (Object.keys(measured).length) setSizes((current) => ({ ...current, ...measured }));
  }, []);
  const merged = useMemo(
    () => nodes.map((n) => (sizes[n.id] ? { ...n, measured: sizes[n.id] } : n)),
    [nodes, sizes],
  );
  return [merged, onNodesChange];
}
