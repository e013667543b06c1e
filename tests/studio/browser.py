"""Shared pieces of the studio's browser tests: where Chromium is, screenshots, and the
geometry of a drawn graph read from the DOM."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("STUDIO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "studio"
UI_URL = "http://127.0.0.1:8233"
TIMEOUT_MS = 30_000


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the Python package 'playwright' is not installed (pip install -e '.[test]')"
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


async def shot(page: Any, name: str) -> None:
    """A screenshot of the page, kept under tests/artifacts/studio."""
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


# Reads a drawn graph from the DOM, in flow units (screen pixels over the zoom): each node's
# box, and for each edge (by its data-testid) the nodes its path passes through (points
# sampled every screen pixel or two) and the length of it that shows, outside every node
# and every handle (a handle is drawn over the edge's ends).
_GEOMETRY_JS = """
(canvasTestId) => {
  const canvas = document.querySelector(`[data-testid="${canvasTestId}"]`);
  const viewport = canvas.querySelector(".react-flow__viewport");
  const zoom = new DOMMatrix(getComputedStyle(viewport).transform).a;
  const box = (el) => {
    const r = el.getBoundingClientRect();
    return { left: r.left, top: r.top, right: r.right, bottom: r.bottom };
  };
  const nodes = {};
  for (const el of canvas.querySelectorAll(".react-flow__node")) nodes[el.dataset.id] = box(el);
  const handles = [...canvas.querySelectorAll(".react-flow__handle")].map(box);
  const inside = (p, r, pad) =>
    p.x > r.left + pad && p.x < r.right - pad && p.y > r.top + pad && p.y < r.bottom - pad;
  const covered = (p) =>
    Object.values(nodes).some((r) => inside(p, r, 0)) || handles.some((r) => inside(p, r, 0));
  const edges = {};
  for (const g of canvas.querySelectorAll(".react-flow__edge")) {
    const path = g.querySelector("path.react-flow__edge-path");
    const ctm = path.getScreenCTM();
    const total = path.getTotalLength();
    const steps = Math.max(2, Math.ceil((total * zoom) / 1.5));
    const points = [];
    for (let i = 0; i <= steps; i++) {
      const p = path.getPointAtLength((total * i) / steps);
      points.push(new DOMPoint(p.x, p.y).matrixTransform(ctm));
    }
    const through = new Set();
    let visible = 0;
    points.forEach((p, i) => {
      for (const [id, r] of Object.entries(nodes)) if (inside(p, r, 1)) through.add(id);
      const q = points[i - 1];
      if (q && !covered(p) && !covered(q)) visible += Math.hypot(p.x - q.x, p.y - q.y);
    });
    edges[g.dataset.testid] = { through: [...through], visible: visible / zoom };
  }
  const flow = (r) => ({
    left: r.left / zoom, top: r.top / zoom, right: r.right / zoom, bottom: r.bottom / zoom,
  });
  return {
    zoom,
    nodes: Object.fromEntries(Object.entries(nodes).map(([id, r]) => [id, flow(r)])),
    edges,
  };
}
"""


async def graph_geometry(page: Any, canvas: str) -> dict[str, Any]:
    """The drawn graph's geometry (see _GEOMETRY_JS) once it holds still: read until two reads
    a moment apart agree, so a fit-view animation or a late re-measure is not caught midway."""
    previous = await page.evaluate(_GEOMETRY_JS, canvas)
    for _ in range(40):
        await page.wait_for_timeout(150)
        current = await page.evaluate(_GEOMETRY_JS, canvas)
        if current == previous:
            return dict(current)
        previous = current
    raise AssertionError(f"the graph in {canvas} did not settle: {previous}")


def gap_between(a: dict[str, float], b: dict[str, float]) -> float:
    """The clear distance between two boxes (negative: they overlap)."""
    horizontal = max(b["left"] - a["right"], a["left"] - b["right"])
    vertical = max(b["top"] - a["bottom"], a["top"] - b["bottom"])
    return max(horizontal, vertical)


def drawing_problems(
    geometry: dict[str, Any],
    endpoints: dict[str, tuple[str, str]],
    *,
    min_gap: float,
    min_visible: float,
) -> list[str]:
    """What makes a drawn graph hard to read: nodes closer than ``min_gap`` (flow px), an
    edge missing, passing through a node it does not connect, or showing less than
    ``min_visible`` of its length. ``endpoints`` maps each edge's test id to its nodes."""
    problems: list[str] = []
    nodes: dict[str, dict[str, float]] = geometry["nodes"]
    ids = sorted(nodes)
    for i, first in enumerate(ids):
        for second in ids[i + 1 :]:
            gap = gap_between(nodes[first], nodes[second])
            if gap < min_gap:
                problems.append(f"nodes {first} and {second} are {gap:.0f} px apart")
    for edge_id, (source, target) in sorted(endpoints.items()):
        drawn = geometry["edges"].get(edge_id)
        if drawn is None:
            problems.append(f"{edge_id} ({source} -> {target}) is not drawn")
            continue
        crossed = sorted(set(drawn["through"]) - {source, target})
        if crossed:
            problems.append(f"{edge_id} ({source} -> {target}) passes through {crossed}")
        if drawn["visible"] < min_visible:
            problems.append(
                f"{edge_id} ({source} -> {target}) shows {drawn['visible']:.0f} px of its length"
            )
    return problems
