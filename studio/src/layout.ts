// Positions of a definition's nodes: ui_properties.position where set, else dagre's layout.
// Shown (or loaded into the designer), saved positions that make nodes touch are spread
// apart, or replaced by the layout, so that every node and edge can be seen.

import dagre from "@dagrejs/dagre";
import type { PluginWorkflow, Position, WorkflowNode } from "./types";

/** The drawn width of a node (.wf-node in styles.css). */
export const NODE_WIDTH = 190;

/** The height of the monitor's line of detail under a node's title (.wf-node-detail). */
export const DETAIL_LINE = 16;

/** The drawn height of a node, at most: 68 px of header and body (72 with the double border
 * of aggregators and splitters), 20 px a row of ports, and ``extra`` (a view's own lines). */
export function nodeHeight(node: WorkflowNode, extra = 0): number {
  const rows = Math.max(node.input_ports.length, node.output_ports.length);
  return 72 + (rows > 0 ? rows * 20 + 4 : 0) + extra;
}

export type Size = { width: number; height: number };

// Room between layers for an edge's straight runs out of and into its handles and its arrow,
// and between the nodes of a layer for edges that skip layers to be routed past them (see
// routing.ts: STUB, CLEARANCE).
const LAYOUT = { rankdir: "LR", ranksep: 100, nodesep: 40, edgesep: 24, marginx: 20, marginy: 20 };
// The least clear space between nodes drawn from saved positions: side by side, room for an
// edge with its arrow; one above the other, room to tell them apart.
const MIN_GAP_X = 60;
const MIN_GAP_Y = 30;
// Saved positions are spread by at most this factor; closer ones are laid out afresh.
const MAX_SPREAD = 4;

export function storedPosition(node: WorkflowNode): Position | null {
  const position = node.ui_properties?.position as unknown;
  if (position && typeof position === "object") {
    const { x, y } = position as { x?: unknown; y?: unknown };
    if (typeof x === "number" && typeof y === "number" && isFinite(x) && isFinite(y)) {
      return { x, y };
    }
  }
  return null;
}

/** Left-to-right layered layout of the whole graph (top-left corners), with the nodes'
 * measured sizes where given (the designer's canvas), else their drawn sizes (``extra``
 * taller each). */
export function autoLayout(
  workflow: PluginWorkflow,
  { measured = {}, extra = 0 }: { measured?: Record<string, Size>; extra?: number } = {},
): Record<string, Position> {
  const graph = new dagre.graphlib.Graph();
  graph.setGraph(LAYOUT);
  graph.setDefaultEdgeLabel(() => ({}));
  const sizes = new Map<string, Size>();
  for (const node of workflow.nodes) {
    if (sizes.has(node.node_id)) continue;
    const size = measured[node.node_id] ?? { width: NODE_WIDTH, height: nodeHeight(node, extra) };
    sizes.set(node.node_id, size);
    graph.setNode(node.node_id, { ...size });
  }
  for (const conn of workflow.connections) {
    if (sizes.has(conn.source_node) && sizes.has(conn.target_node) && conn.source_node !== conn.target_node) {
      graph.setEdge(conn.source_node, conn.target_node);
    }
  }
  dagre.layout(graph);
  const positions: Record<string, Position> = {};
  for (const [id, size] of sizes) {
    const laid = graph.node(id) as { x: number; y: number } | undefined;
    if (laid) {
      positions[id] = { x: Math.round(laid.x - size.width / 2), y: Math.round(laid.y - size.height / 2) };
    }
  }
  return positions;
}

/** Where each node is: its stored position, or the auto-layout's for nodes without. The
 * designer draws these as they are (a node may be dragged onto another while editing).
 * ``extra``: how much taller than nodeHeight the view draws each node. */
export function positionsOf(workflow: PluginWorkflow, extra = 0): Record<string, Position> {
  const stored = workflow.nodes.map(storedPosition);
  if (stored.every((p) => p !== null)) {
    return Object.fromEntries(workflow.nodes.map((n, i) => [n.node_id, stored[i] as Position]));
  }
  const laid = autoLayout(workflow, { extra });
  const positions: Record<string, Position> = {};
  workflow.nodes.forEach((node, i) => {
    positions[node.node_id] = stored[i] ?? laid[node.node_id] ?? { x: 0, y: 0 };
  });
  return positions;
}

/**
 * Where a definition's nodes are drawn when it is shown, or loaded into the designer: its
 * positions (positionsOf), spread apart when they put nodes closer than MIN_GAP_X side by
 * side and MIN_GAP_Y one above the other. Saved positions come from hand-written files and
 * other tools, which do not know the size of a node here. Spreading scales them about their
 * top-left corner, so the arrangement the author chose is kept; nodes saved (nearly) on the
 * same spot cannot be parted that way, and the graph is laid out afresh.
 */
export function readablePositions(workflow: PluginWorkflow, extra = 0): Record<string, Position> {
  const positions = positionsOf(workflow, extra);
  const factor = spreadFactor(workflow, positions, extra);
  if (factor === 1) return positions;
  if (factor > MAX_SPREAD) return autoLayout(workflow, { extra });
  const ids = Object.keys(positions);
  const left = Math.min(...ids.map((id) => positions[id].x));
  const top = Math.min(...ids.map((id) => positions[id].y));
  return Object.fromEntries(
    ids.map((id) => {
      const { x, y } = positions[id];
      return [id, { x: Math.round(left + (x - left) * factor), y: Math.round(top + (y - top) * factor) }];
    }),
  );
}

/** The least factor (1 at least, Infinity for nodes on one spot) by which the positions must
 * be scaled so that every two nodes are far enough apart, side by side or one above the other. */
function spreadFactor(workflow: PluginWorkflow, positions: Record<string, Position>, extra: number): number {
  const byId = new Map(workflow.nodes.map((n) => [n.node_id, n])); // a duplicate id counts once
  const nodes = [...byId.values()].filter((n) => positions[n.node_id]);
  // A little over the gap, so that rounding the scaled positions cannot undo it.
  const slack = 1.002;
  let factor = 1;
  for (let i = 0; i < nodes.length; i++) {
    const a = positions[nodes[i].node_id];
    for (let j = i + 1; j < nodes.length; j++) {
      const b = positions[nodes[j].node_id];
      const dx = Math.abs(a.x - b.x);
      const dy = Math.abs(a.y - b.y);
      const upper = a.y <= b.y ? nodes[i] : nodes[j];
      const sideBySide = dx > 0 ? (NODE_WIDTH + MIN_GAP_X) / dx : Infinity;
      const stacked = dy > 0 ? (nodeHeight(upper, extra) + MIN_GAP_Y) / dy : Infinity;
      const needed = Math.min(sideBySide, stacked);
      if (needed > factor) factor = needed * slack;
    }
  }
  return factor;
}
