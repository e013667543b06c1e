// Positions of a definition's nodes: ui_properties.position where set, else dagre's layout.

import dagre from "@dagrejs/dagre";
import type { PluginWorkflow, Position, WorkflowNode } from "./types";

export const NODE_WIDTH = 190;

export function nodeHeight(node: WorkflowNode): number {
  const rows = Math.max(node.input_ports.length, node.output_ports.length);
  return 76 + (rows > 0 ? rows * 20 + 6 : 0);
}

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

/** Left-to-right layered layout of the whole graph (top-left corners). */
export function autoLayout(workflow: PluginWorkflow): Record<string, Position> {
  const graph = new dagre.graphlib.Graph();
  graph.setGraph({ rankdir: "LR", nodesep: 34, ranksep: 80, marginx: 20, marginy: 20 });
  graph.setDefaultEdgeLabel(() => ({}));
  const ids = new Set<string>();
  for (const node of workflow.nodes) {
    if (ids.has(node.node_id)) continue;
    ids.add(node.node_id);
    graph.setNode(node.node_id, { width: NODE_WIDTH, height: nodeHeight(node) });
  }
  for (const conn of workflow.connections) {
    if (ids.has(conn.source_node) && ids.has(conn.target_node) && conn.source_node !== conn.target_node) {
      graph.setEdge(conn.source_node, conn.target_node);
    }
  }
  dagre.layout(graph);
  const positions: Record<string, Position> = {};
  for (const node of workflow.nodes) {
    const laid = graph.node(node.node_id) as { x: number; y: number } | undefined;
    if (laid) {
      positions[node.node_id] = {
        x: Math.round(laid.x - NODE_WIDTH / 2),
        y: Math.round(laid.y - nodeHeight(node) / 2),
      };
    }
  }
  return positions;
}

/** Where each node is drawn: its stored position, or the auto-layout's for nodes without. */
export function positionsOf(workflow: PluginWorkflow): Record<string, Position> {
  const stored = workflow.nodes.map(storedPosition);
  if (stored.every((p) => p !== null)) {
    return Object.fromEntries(workflow.nodes.map((n, i) => [n.node_id, stored[i] as Position]));
  }
  const laid = autoLayout(workflow);
  const positions: Record<string, Position> = {};
  workflow.nodes.forEach((node, i) => {
    positions[node.node_id] = stored[i] ?? laid[node.node_id] ?? { x: 0, y: 0 };
  });
  return positions;
}
