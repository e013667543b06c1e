// The engine's JSON shapes (engine/language/models.py, engine/runtime/contracts.py), as the
// API sends them.

export type NodeType =
  | "source"
  | "processor"
  | "sink"
  | "decision"
  | "aggregator"
  | "splitter"
  | "custom";
export type ConnectionType = "data_flow" | "control" | "event" | "dependency";
export type ExecutionMode = "sequential" | "parallel" | "conditional" | "event_driven" | "streaming";
export type ExecutionStatus =
  | "pending"
  | "queued"
  | "running"
  | "paused"
  | "completed"
  | "failed"
  | "cancelled"
  | "terminated";
export type NodeStatus = "pending" | "running" | "completed" | "failed" | "skipped" | "cancelled";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export type Position = { x: number; y: number };

export interface WorkflowNode {
  node_id: string;
  name: string;
  description: string;
  plugin_id: string;
  node_type: NodeType;
  configuration: JsonObject;
  ui_properties: JsonObject;
  input_ports: string[];
  output_ports: string[];
}

export interface WorkflowConnection {
  connection_id: string;
  source_node: string;
  source_port: string;
  target_node: string;
  target_port: string;
  connection_type: ConnectionType;
  properties: JsonObject;
}

export interface PluginWorkflow {
  workflow_id: string;
  name: string;
  description: string;
  execution_mode: ExecutionMode;
  nodes: WorkflowNode[];
  connections: WorkflowConnection[];
  global_configuration: JsonObject;
  metadata: JsonObject;
  version: number;
}

export interface WorkflowSummary {
  workflow_id: string;
  name?: string;
  description?: string;
  execution_mode?: ExecutionMode;
  version?: number;
  nodes?: number;
  connections?: number;
  error?: ApiErrorBody;
}

export interface Problem {
  code: string;
  message: string;
  nodes: string[];
  connections: number[];
}

export interface ValidationReport {
  ok: boolean;
  code?: string;
  problems: Problem[];
  catalog_checked?: boolean;
}

export interface JsonSchema {
  type?: string | string[];
  title?: string;
  description?: string;
  default?: Json;
  enum?: Json[];
  const?: Json;
  items?: JsonSchema;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  $ref?: string;
  $defs?: Record<string, JsonSchema>;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  format?: string;
  additionalProperties?: boolean | JsonSchema;
}

export interface PluginInfo {
  plugin_id: string;
  description: string;
  function: boolean;
  source: boolean;
  engine: boolean;
  config_schema: JsonSchema | null;
  source_config_schema: JsonSchema | null;
  input_ports: string[];
  output_ports: string[];
  node_type: NodeType;
}

export interface Catalog {
  plugins: PluginInfo[];
  published: boolean;
}

export interface NodeState {
  node_id?: string;
  plugin_id?: string;
  status: NodeStatus;
  attempts?: number;
  started_at?: string | null;
  completed_at?: string | null;
  result?: JsonObject;
  error?: JsonObject | string;
  last_error?: Json;
  counters?: JsonObject;
  handled?: boolean;
  skipped_by_operator?: boolean;
  child_execution_id?: string;
  [key: string]: unknown;
}

export interface ExecutionContext {
  execution_id: string;
  workflow_id: string;
  status: ExecutionStatus;
  start_time: string | null;
  end_time: string | null;
  execution_data: JsonObject;
  node_states: Record<string, NodeState>;
  progress: number;
  current_node: string;
  error_messages: string[];
}

export interface ExecutionView {
  context: ExecutionContext;
  definition?: PluginWorkflow;
  temporal_ui: string | null;
}

export interface ExecutionRow {
  execution_id: string;
  workflow_id: string;
  workflow_version?: number | null;
  execution_mode?: ExecutionMode | null;
  status: ExecutionStatus;
  start_time: string | null;
  end_time: string | null;
  active: boolean;
  progress?: number | null;
  error?: ApiErrorBody;
}

export interface WorkflowEvent {
  type: string;
  execution_id: string;
  workflow_id: string;
  sequence: number;
  timestamp: string;
  node_id?: string | null;
  result?: JsonObject | null;
  error?: string | null;
  progress?: number | null;
  details?: JsonObject | null;
}

export interface ApiErrorBody {
  code: string;
  message: string;
  details: JsonObject;
}

export interface ServerInfo {
  task_queue: string;
  namespace: string;
  temporal_ui: string | null;
  auth: boolean;
  execution_modes: ExecutionMode[];
  node_types: NodeType[];
  connection_types: ConnectionType[];
}

export const TERMINAL: ExecutionStatus[] = ["completed", "failed", "cancelled", "terminated"];

/** A webhook as GET /api/hooks lists it (never with its secret). */
export interface HookInfo {
  hook_id: string;
  workflow_id: string;
  action: "start" | "event";
  execution_id: string | null;
  event_type: string;
  source: string | null;
  idempotency_field: string | null;
  max_body_bytes: number;
  rate_per_minute: number;
  tolerance_seconds: number;
  created_at: number;
  rotated_at: number | null;
}

// Schedules (engine/client/schedules.py).
export type OverlapPolicy = "skip" | "buffer_one" | "buffer_all" | "cancel_other" | "terminate_other" | "allow_all";

export interface ScheduledRun {
  execution_id: string;
  scheduled_at: string;
  started_at: string;
}

export interface ScheduleSummary {
  schedule_id: string;
  workflow_id: string;
  cron: string | null;
  interval_seconds: number | null;
  time_zone: string | null;
  paused: boolean;
  note: string;
  next_action_times: string[];
  recent_runs: ScheduledRun[];
}

export interface ScheduleDetails extends ScheduleSummary {
  workflow_version: number | null;
  overlap: OverlapPolicy;
  catchup_window_seconds: number | null;
  jitter_seconds: number | null;
  input_data: JsonObject;
  running: string[];
  actions_taken: number;
  skipped_for_overlap: number;
  missed_catchup_window: number;
  created_at: string | null;
  temporal_schedule_id: string;
  temporal_ui?: string | null;
}
