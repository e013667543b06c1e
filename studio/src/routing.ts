// Edges drawn around nodes.
//
// React Flow draws an edge as one curve from its source handle to its target handle, across
// whatever lies between: an edge that skips a rank of the layout (a -> c beside a -> b -> c),
// runs between saved positions or goes backwards passes behind nodes. Such an edge takes an
// orthogonal route instead: out of the source, along a lane clear of every node (the
// shortest one), into the target. Pure geometry in flow coordinates; RoutedEdge draws it.

export interface Point {
  x: number;
  y: number;
}

export interface Box {
  id: string;
  left: number;
  top: number;
  right: number;
  bottom: number;
}

export interface Route {
  path: string;
  labelX: number;
  labelY: number;
}

/** How far a route keeps from the nodes it passes (a curve: half of it). */
export const CLEARANCE = 10;
/** The straight run out of a source handle, and into a target handle, before a route turns. */
export const STUB = 20;
const RADIUS = 8;
// Bounds on the candidates tried for one edge (nearest first), so a crowded canvas (nodes
// dragged onto each other in the designer) stays responsive: past them, the plain curve.
const MAX_LANES = 32;
const MAX_TURNS = 16;

/** The stretch of x a route between these handles may use: only the nodes across it matter. */
export function routeSpan(source: Point, target: Point): { left: number; right: number } {
  return {
    left: Math.min(source.x, target.x) - STUB - CLEARANCE,
    right: Math.max(source.x, target.x) + STUB + CLEARANCE,
  };
}

/** The path of an edge from a source handle (on a node's right) to a target handle (on a
 * node's left), clear of every box but where that cannot be had. */
export function routeEdge(
  source: Point,
  target: Point,
  sourceId: string,
  targetId: string,
  boxes: Box[],
): Route {
  const forward = target.x - source.x >= 2 * STUB;
  const others = boxes.filter((b) => b.id !== sourceId && b.id !== targetId);
  const curve = bezier(source, target);
  if (forward && curveIsClear(curve, others)) return curveRoute(curve);
  const points = orthogonalRoute(source, target, sourceId, targetId, boxes);
  // Nodes placed on top of each other leave no clear way (the designer allows it while
  // dragging): then the plain curve.
  return points ? polylineRoute(points) : curveRoute(curve);
}

// -- the plain curve (React Flow's bezier between a right and a left handle) ------------------

type Cubic = [Point, Point, Point, Point];

function bezier(source: Point, target: Point): Cubic {
  const dx = target.x - source.x;
  const offset = dx >= 0 ? dx / 2 : 0.25 * 25 * Math.sqrt(-dx);
  return [source, { x: source.x + offset, y: source.y }, { x: target.x - offset, y: target.y }, target];
}

function pointOnCubic([p0, p1, p2, p3]: Cubic, t: number): Point {
  const u = 1 - t;
  const a = u * u * u;
  const b = 3 * u * u * t;
  const c = 3 * u * t * t;
  const d = t * t * t;
  return { x: a * p0.x + b * p1.x + c * p2.x + d * p3.x, y: a * p0.y + b * p1.y + c * p2.y + d * p3.y };
}

function curveIsClear(curve: Cubic, boxes: Box[]): boolean {
  const [start, , , end] = curve;
  // Samples a few pixels apart: a node is far larger than the gap between two.
  const steps = Math.max(8, Math.ceil((Math.abs(end.x - start.x) + Math.abs(end.y - start.y)) / 4));
  for (let i = 0; i <= steps; i++) {
    const p = pointOnCubic(curve, i / steps);
    if (boxes.some((b) => contains(b, p, CLEARANCE / 2))) return false;
  }
  return true;
}

function curveRoute(curve: Cubic): Route {
  const [p0, p1, p2, p3] = curve;
  const middle = pointOnCubic(curve, 0.5);
  return {
    path: `M${p0.x},${p0.y} C${p1.x},${p1.y} ${p2.x},${p2.y} ${p3.x},${p3.y}`,
    labelX: middle.x,
    labelY: middle.y,
  };
}

// -- the orthogonal route ----------------------------------------------------------------------

function contains(box: Box, p: Point, margin: number): boolean {
  return p.x > box.left - margin && p.x < box.right + margin && p.y > box.top - margin && p.y < box.bottom + margin;
}

/** Whether an axis-parallel segment keeps (almost) CLEARANCE from every box. */
function segmentIsClear(a: Point, b: Point, boxes: Box[]): boolean {
  const margin = CLEARANCE - 1;
  const left = Math.min(a.x, b.x);
  const right = Math.max(a.x, b.x);
  const top = Math.min(a.y, b.y);
  const bottom = Math.max(a.y, b.y);
  return boxes.every(
    (box) =>
      right <= box.left - margin || left >= box.right + margin || bottom <= box.top - margin || top >= box.bottom + margin,
  );
}

/**
 * Source -> (x1, source.y) -> (x1, lane) -> (x2, lane) -> (x2, target.y) -> target: the first
 * turn at x1 right of the source, the last at x2 left of the target, the lane a height that
 * clears the nodes between. Candidates come from the nodes' sides; lanes are tried shortest
 * first, and with the fewest turns among equals. The stubs (out of the source, into the
 * target) need not clear their own nodes; every other segment clears every node.
 */
function orthogonalRoute(
  source: Point,
  target: Point,
  sourceId: string,
  targetId: string,
  boxes: Box[],
): Point[] | null {
  const firstX = source.x + STUB;
  const lastX = target.x - STUB;
  const span = routeSpan(source, target);
  const near = boxes.filter((b) => b.right > span.left && b.left < span.right);
  const others = near.filter((b) => b.id !== sourceId && b.id !== targetId);
  const sides = near.flatMap((b) => [b.left - CLEARANCE, b.right + CLEARANCE]);
  const firstTurns = unique([firstX, ...sides.filter((x) => x > firstX)])
    .sort((a, b) => a - b)
    .slice(0, MAX_TURNS);
  const lastTurns = unique([lastX, ...sides.filter((x) => x < lastX)])
    .sort((a, b) => b - a)
    .slice(0, MAX_TURNS);
  const turns = (y: number) => (y === source.y || y === target.y ? 0 : 1);
  const cost = (y: number) => Math.abs(y - source.y) + Math.abs(y - target.y);
  const lanes = unique([source.y, target.y, ...near.flatMap((b) => [b.top - CLEARANCE, b.bottom + CLEARANCE])])
    .sort((a, b) => cost(a) - cost(b) || turns(a) - turns(b))
    .slice(0, MAX_LANES);
  const startsClear = (x: number, y: number) =>
    segmentIsClear(source, { x, y: source.y }, others) && segmentIsClear({ x, y: source.y }, { x, y }, near);
  const endsClear = (x: number, y: number) =>
    segmentIsClear({ x, y }, { x, y: target.y }, near) && segmentIsClear({ x, y: target.y }, target, others);
  // A forward edge doubles back (x2 < x1) only where no lane lets it go straight on.
  const forward = lastX >= firstX;
  for (const straightOn of forward ? [true, false] : [false]) {
    for (const y of lanes) {
      const x2s = lastTurns.filter((x) => endsClear(x, y));
      for (const x1 of firstTurns) {
        if (!startsClear(x1, y)) continue;
        const x2 = x2s.find((x) => (!straightOn || x >= x1) && segmentIsClear({ x: x1, y }, { x, y }, near));
        if (x2 !== undefined) {
          return simplify([source, { x: x1, y: source.y }, { x: x1, y }, { x: x2, y }, { x: x2, y: target.y }, target]);
        }
      }
    }
  }
  return null;
}

function unique(values: number[]): number[] {
  return [...new Set(values.map((v) => Math.round(v * 2) / 2))];
}

/** Without repeated points and without the middle point of three on one line. */
function simplify(points: Point[]): Point[] {
  const distinct = points.filter((p, i) => i === 0 || p.x !== points[i - 1].x || p.y !== points[i - 1].y);
  return distinct.filter((p, i) => {
    if (i === 0 || i === distinct.length - 1) return true;
    const a = distinct[i - 1];
    const b = distinct[i + 1];
    return !((a.x === p.x && p.x === b.x) || (a.y === p.y && p.y === b.y));
  });
}

/** The polyline with rounded corners, its label halfway along. */
function polylineRoute(points: Point[]): Route {
  let path = `M${points[0].x},${points[0].y}`;
  for (let i = 1; i < points.length - 1; i++) {
    const [a, p, b] = [points[i - 1], points[i], points[i + 1]];
    const r = Math.min(RADIUS, distance(a, p) / 2, distance(p, b) / 2);
    const into = toward(p, a, r);
    const out = toward(p, b, r);
    path += ` L${into.x},${into.y} Q${p.x},${p.y} ${out.x},${out.y}`;
  }
  const end = points[points.length - 1];
  path += ` L${end.x},${end.y}`;
  const label = halfway(points);
  return { path, labelX: label.x, labelY: label.y };
}

function distance(a: Point, b: Point): number {
  return Math.hypot(b.x - a.x, b.y - a.y);
}

function toward(from: Point, to: Point, length: number): Point {
  const d = distance(from, to) || 1;
  return { x: from.x + ((to.x - from.x) * length) / d, y: from.y + ((to.y - from.y) * length) / d };
}

function halfway(points: Point[]): Point {
  let left = points.slice(1).reduce((sum, p, i) => sum + distance(points[i], p), 0) / 2;
  for (let i = 1; i < points.length; i++) {
    const step = distance(points[i - 1], points[i]);
    if (step >= left) return toward(points[i - 1], points[i], left);
    left -= step;
  }
  return points[points.length - 1];
}
