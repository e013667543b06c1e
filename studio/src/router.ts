// Hash routing: #/path/segments?query. Execution ids contain '/', so views take the rest.

import { useEffect, useState } from "react";

export interface Route {
  segments: string[];
  query: URLSearchParams;
}

function parse(hash: string): Route {
  const raw = hash.replace(/^#/, "");
  const [path, search = ""] = raw.split("?", 2);
  const segments = path
    .split("/")
    .filter(Boolean)
    .map((s) => decodeURIComponent(s));
  return { segments, query: new URLSearchParams(search) };
}

export function useRoute(): Route {
  const [hash, setHash] = useState(window.location.hash);
  useEffect(() => {
    const changed = () => setHash(window.location.hash);
    window.addEventListener("hashchange", changed);
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  return parse(hash);
}

export function href(...segments: string[]): string {
  return "#/" + segments.map((s) => s.split("/").map(encodeURIComponent).join("/")).join("/");
}

export function navigate(target: string): void {
  window.location.hash = target.replace(/^#/, "");
}
