// A small client of the studio's JSON API (engine/studio/app.py).

import type { ApiErrorBody, JsonObject } from "./types";

const TOKEN_KEY = "orchestrator-studio-token";
let token = sessionStorage.getItem(TOKEN_KEY) ?? "";
const unauthorizedListeners = new Set<() => void>();

/** A token given in the page's URL (?token=...) is kept for the session and removed from
 * the address bar, so it does not end up in bookmarks or screenshots. */
export function takeTokenFromUrl(): void {
  const url = new URL(window.location.href);
  const given = url.searchParams.get("token");
  if (given) {
    setToken(given);
    url.searchParams.delete("token");
    window.history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
}

export function setToken(value: string): void {
  token = value;
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function onUnauthorized(listener: () => void): () => void {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: JsonObject,
  ) {
    super(message);
  }
}

export async function api<T>(
  method: "GET" | "POST" | "PUT" | "DELETE",
  path: string,
  body?: unknown,
): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const init: RequestInit = { method, headers };
  if (method !== "GET") {
    // The server requires JSON on every change (a cross-site form cannot send it).
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body ?? {});
  }
  let response: Response;
  try {
    response = await fetch(path, init);
  } catch (exc) {
    throw new ApiError(0, "ServerUnavailable", `the studio server does not answer (${exc})`, {});
  }
  if (response.status === 204) return undefined as T;
  const data = (await response.json().catch(() => null)) as unknown;
  if (!response.ok) {
    const error = (data ?? {}) as Partial<ApiErrorBody>;
    if (response.status === 401) unauthorizedListeners.forEach((listener) => listener());
    throw new ApiError(
      response.status,
      error.code ?? `HTTP${response.status}`,
      error.message ?? response.statusText,
      error.details ?? {},
    );
  }
  return data as T;
}

/** The API path of an execution (its id contains '/', kept as a path separator). */
export function executionPath(executionId: string): string {
  return `/api/executions/${executionId.split("/").map(encodeURIComponent).join("/")}`;
}

export function workflowPath(workflowId: string): string {
  return `/api/workflows/${encodeURIComponent(workflowId)}`;
}

/** EventSource cannot send headers: the events endpoint takes the token as ?token=. */
export function eventsUrl(executionId: string, after = 0): string {
  const params = new URLSearchParams();
  if (after > 0) params.set("after", String(after));
  if (token) params.set("token", token);
  const query = params.toString();
  return `${executionPath(executionId)}/events${query ? `?${query}` : ""}`;
}

export function errorText(exc: unknown): string {
  if (exc instanceof ApiError) return `${exc.code}: ${exc.message}`;
  return String(exc);
}
