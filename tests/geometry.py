"""What a diagram looks like, measured from Graphviz's own layout (`dot -Tjson`), not by eye.

`problems(layout)` lists, in words, every place where
  - an edge passes through a node it does not connect, or through a cluster
    that holds neither of its ends;
  - an edge, a node or another label runs through an edge's label;
  - an edge runs through a cluster's title;
  - two lines of one label overlap.
Coordinates are Graphviz points (1/72 inch), y upwards.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Lines that only touch a box (an edge leaving a cluster's corner, an arrow
# ending on a node's border) are not crossings: boxes are shrunk by this much.
TOLERANCE = 1.5
ASCENT, DESCENT = 0.73, 0.24  # of the font size, above and below a baseline: capitals, and `_` or `g`
CLEARANCE = 1.0  # points between an edge and any label's text
LINE_GAP = 1.0  # points between the lines of a label, so that antialiased glyphs do not touch


@dataclass(frozen=True)
class Box:
    x0: float
    y0: float
    x1: float
    y1: float

    def shrunk(self, by: float) -> Box:
        return Box(self.x0 + by, self.y0 + by, self.x1 - by, self.y1 - by)

    def overlaps(self, other: Box) -> bool:
        return self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1 and other.y0 < self.y1

    def hit_by(self, path: list[tuple[float, float]]) -> bool:
        """Whether the polyline enters the box (Liang–Barsky clipping of each segment)."""
        if self.x0 >= self.x1 or self.y0 >= self.y1:
            return False
        for (ax, ay), (bx, by) in zip(path, path[1:], strict=False):
            low, high = 0.0, 1.0
            sides = ((ax - bx, ax - self.x0), (bx - ax, self.x1 - ax), (ay - by, ay - self.y0), (by - ay, self.y1 - ay))
            for p, q in sides:
                if p == 0:
                    if q < 0:
                        break
                    continue
                t = q / p
                if p < 0:
                    low = max(low, t)
                else:
                    high = min(high, t)
                if low > high:
                    break
            else:
                return True
        return False


def layout(dot_text: str) -> dict:
    """Graphviz's layout of DOT text, as its JSON output."""
    return layout_and_svg(dot_text, svg=False)[0]


def layout_and_svg(dot_text: str, svg: bool = True) -> tuple[dict, bytes]:
    """Graphviz's layout of DOT text as JSON and, from the same layout, the SVG it draws."""
    with tempfile.TemporaryDirectory(prefix="resdsl-layout-") as folder:
        source = Path(folder) / "d.dot"
        source.write_text(dot_text, encoding="utf-8")
        formats = ["-Tjson", "-Tsvg"] if svg else ["-Tjson"]
        subprocess.run(["dot", *formats, "-O", source.name], cwd=folder, capture_output=True, check=True)
        drawn = (Path(folder) / "d.dot.svg").read_bytes() if svg else b""
        return json.loads((Path(folder) / "d.dot.json").read_text(encoding="utf-8")), drawn


def _bezier(points: list[list[float]], steps: int = 12) -> list[tuple[float, float]]:
    """A polyline through the cubic Bézier pieces of a Graphviz spline."""
    out = [(points[0][0], points[0][1])]
    for i in range(0, len(points) - 3, 3):
        p0, p1, p2, p3 = points[i : i + 4]
        for step in range(1, steps + 1):
            t = step / steps
            a, b, c, d = (1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t * t * (1 - t), t**3
            out.append(
                (
                    a * p0[0] + b * p1[0] + c * p2[0] + d * p3[0],
                    a * p0[1] + b * p1[1] + c * p2[1] + d * p3[1],
                )
            )
    return out


def _texts(ops: list[dict]) -> list[tuple[Box, float]]:
    """The box of each text line an xdot op list draws, with its font size."""
    size, boxes = 14.0, []
    for op in ops:
        if op["op"] == "F":
            size = op["size"]
        elif op["op"] == "T" and op["text"].strip():
            (x, y), width = op["pt"], op["width"]
            left = {"l": x, "c": x - width / 2, "r": x - width}[op["align"]]
            boxes.append((Box(left, y - DESCENT * size, left + width, y + ASCENT * size), size))
    return boxes


def _invisible(obj: dict) -> bool:
    return "invis" in obj.get("style", "")


@dataclass
class Shapes:
    """The parts of a layout the checks look at."""

    names: dict[int, str]  # node gvid -> name
    nodes: dict[int, Box]
    clusters: dict[str, tuple[Box, set[int]]]  # name -> box, gvids of the nodes inside (nested included)
    cluster_titles: dict[str, list[Box]]
    edges: list[tuple[int, int, list[tuple[float, float]], list[Box]]]  # tail, head, path, label boxes
    node_texts: dict[int, list[tuple[Box, float]]]

    def name(self, gvid: int) -> str:
        return self.names.get(gvid, str(gvid))


def shapes(data: dict) -> Shapes:
    objects = data.get("objects", [])
    names, nodes, node_texts = {}, {}, {}
    subgraphs: dict[int, dict] = {}
    for obj in objects:
        if "nodes" in obj or "bb" in obj:
            subgraphs[obj["_gvid"]] = obj
            continue
        if _invisible(obj):
            continue
        x, y = map(float, obj["pos"].split(","))
        w, h = float(obj["width"]) * 36, float(obj["height"]) * 36
        names[obj["_gvid"]] = obj["name"]
        nodes[obj["_gvid"]] = Box(x - w, y - h, x + w, y + h)
        node_texts[obj["_gvid"]] = [t for t in _texts(obj.get("_ldraw_", []))]

    def members(gvid: int) -> set[int]:
        sub = subgraphs[gvid]
        found = set(sub.get("nodes", []))
        for child in sub.get("subgraphs", []):
            found |= members(child)
        return found

    clusters, titles = {}, {}
    for gvid, sub in subgraphs.items():
        if not sub["name"].startswith("cluster") or _invisible(sub) or "bb" not in sub:
            continue
        x0, y0, x1, y1 = map(float, sub["bb"].split(","))
        clusters[sub["name"]] = (Box(x0, y0, x1, y1), members(gvid))
        titles[sub["name"]] = [box for box, _ in _texts(sub.get("_ldraw_", []))]
    edges = []
    for edge in data.get("edges", []):
        if _invisible(edge):
            continue
        path: list[tuple[float, float]] = []
        for op in edge.get("_draw_", []):
            if op["op"] == "b":
                path += _bezier(op["points"])
        labels = [box for box, _ in _texts(edge.get("_ldraw_", []))]
        edges.append((edge["tail"], edge["head"], path, labels))
    return Shapes(names, nodes, clusters, titles, edges, node_texts)


class Grid:
    """Boxes bucketed by the cells of a coarse grid, so each edge is tested only against boxes near it."""

    CELL = 64.0

    def __init__(self, boxes: list[tuple[object, Box]]):
        self.cells: dict[tuple[int, int], list[int]] = {}
        self.boxes = boxes
        for i, (_, box) in enumerate(boxes):
            for cell in self._cells(box):
                self.cells.setdefault(cell, []).append(i)

    def _cells(self, box: Box):
        c = self.CELL
        for x in range(int(box.x0 // c), int(box.x1 // c) + 1):
            for y in range(int(box.y0 // c), int(box.y1 // c) + 1):
                yield x, y

    def near(self, box: Box) -> list[tuple[object, Box]]:
        found = sorted({i for cell in self._cells(box) for i in self.cells.get(cell, ())})
        return [self.boxes[i] for i in found]


def _extent(path: list[tuple[float, float]]) -> Box:
    xs, ys = [x for x, _ in path], [y for _, y in path]
    return Box(min(xs), min(ys), max(xs), max(ys))


def problems(data: dict) -> list[str]:
    """Every crossing and overlap in a layout, in words (empty when the diagram is clean)."""
    s = shapes(data)
    labels = [(f"label of {s.name(t)}->{s.name(h)}", box) for t, h, _, boxes in s.edges for box in boxes]
    nodes = Grid(list(s.nodes.items()))
    label_grid = Grid(labels)
    return _edge_crossings(s, nodes, label_grid) + _overlaps(s, labels, nodes, label_grid)


def _edge_crossings(s: Shapes, nodes: Grid, label_grid: Grid) -> list[str]:
    """Edges through a node they do not connect, a cluster that holds neither end, a title or a label."""
    found = []
    clusters = Grid([(cluster, box) for cluster, (box, _) in s.clusters.items()])
    titles = Grid([(cluster, box) for cluster, boxes in s.cluster_titles.items() for box in boxes])
    for tail, head, path, _ in s.edges:
        if not path:
            continue
        edge, extent = f"edge {s.name(tail)}->{s.name(head)}", _extent(path)
        for gvid, box in nodes.near(extent):
            if gvid not in (tail, head) and box.shrunk(TOLERANCE).hit_by(path):
                found.append(f"{edge} passes through node {s.name(gvid)}")
        for cluster, box in clusters.near(extent):
            inside = s.clusters[cluster][1]
            if tail not in inside and head not in inside and box.shrunk(TOLERANCE).hit_by(path):
                found.append(f"{edge} passes through cluster {cluster}")
        for cluster, box in titles.near(extent):
            if box.shrunk(TOLERANCE).hit_by(path):
                found.append(f"{edge} runs through the title of {cluster}")
        for what, box in label_grid.near(extent):
            if box.shrunk(-CLEARANCE).hit_by(path):
                found.append(f"{edge} runs through the {what}")
    return found


def _overlaps(s: Shapes, labels: list[tuple[str, Box]], nodes: Grid, label_grid: Grid) -> list[str]:
    """Labels over nodes or other labels, and lines of one node's label that touch."""
    found = []
    for what, box in labels:
        for gvid, node in nodes.near(box):
            if box.overlaps(node):
                found.append(f"the {what} overlaps node {s.name(gvid)}")
        for other, second in label_grid.near(box):
            if second is not box and what < other and box.overlaps(second):
                found.append(f"the {what} overlaps the {other}")
    for gvid, texts in s.node_texts.items():
        lines = sorted(texts, key=lambda t: -t[0].y1)
        for (upper, _), (lower, _) in zip(lines, lines[1:], strict=False):
            if upper.y0 - lower.y1 < LINE_GAP and upper.x0 < lower.x1 and lower.x0 < upper.x1:
                found.append(f"two lines of node {s.name(gvid)} touch")
    return found
