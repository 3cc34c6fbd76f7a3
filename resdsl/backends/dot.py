"""Graphviz backend: architecture diagrams at three levels of detail.

The IR is first grouped into display units, then written as DOT:
  stage   the stem, one node per stage of repeated blocks, the head
  block   one node per residual block (its convs summarised, one per line), a
          `+` node per residual add, and the shortcut drawn beside the block:
          identity as a plain line, a projection as a coloured node on it
  op      every IR op, blocks and stages as clusters
BatchNorm and ReLU are folded into the op they belong to at the block and
stage levels, on the side the norm policy places them ("3×3 conv, 64 · BN · ReLU").

Long networks are wrapped: stages are packed into columns of a bounded height
(rows under `rankdir=LR`), and a stage too long for one column is split over
several, so ResNet-152 stays a compact page instead of one long strip.

The DOT text needs no package (backends/dot_writer.py); images come from
Graphviz's `dot` program. Neither torch nor onnx is imported here.
"""

from __future__ import annotations

import html
import math
import subprocess
from dataclasses import dataclass, field

import networkx as nx

from ..ir.graph import operands, order, shape_text, users
from ..passes.projections import NAME as PROJECTIONS
from .cost import totals
from .dot_writer import Digraph, Html

LEVELS = ("stage", "block", "op")
RANKDIRS = ("TB", "LR")
IMAGE_FORMATS = ("svg", "png", "pdf")

# Length budget of one column (TB) or row (LR), in ranks; a block is two ranks at block
# level. Rows are shorter: a rank is as wide as its widest label.
COLUMN_RANKS = {("block", "TB"): 20, ("op", "TB"): 30, ("block", "LR"): 8, ("op", "LR"): 14}

LIGHT = ("batchnorm", "relu")
# Light ops drawn with the op after them, by norm policy; otherwise with the op before.
FOLD_FORWARD = {"pre": ("batchnorm", "relu"), "relu_preact": ("relu",)}

FONT = "Helvetica"
GREY = "#666666"
STYLE = {  # unit kind -> node attributes
    "input": dict(shape="box", style="rounded", color=GREY),
    "output": dict(shape="box", style="rounded", color=GREY),
    "op": dict(shape="box", style="rounded,filled", fillcolor="#f1f3f5", color="#868e96"),
    "body": dict(shape="box", style="rounded,filled", fillcolor="#e7eef8", color="#4a6fa5"),
    "stage": dict(shape="box", style="rounded,filled", fillcolor="#e7eef8", color="#4a6fa5"),
    "add": dict(shape="circle", style="filled", fillcolor="white", color="#343a40", margin="0.02"),
    "projection": dict(shape="box", style="rounded,filled", fillcolor="#ffe8cc", color="#e8590c"),
    "pad": dict(shape="box", style="rounded,filled", fillcolor="#d0ebff", color="#1971c2"),
}
SHORTCUT_COLOR = {"projection": "#e8590c", "pad": "#1971c2"}


class RenderError(Exception):
    """Rendering cannot run here (Graphviz's `dot` is missing or fails); not a mistake in the spec."""


def op_label(op, channels: bool = True) -> str:
    """A short, paper-style description of one op; unknown kinds show their attributes."""
    kind = op.kind
    if kind == "conv":
        parts = [f"{op.kernel}×{op.kernel} conv"] + [str(op.out_channels)] * channels
        parts += [f"stride {op.stride}"] * (op.stride > 1)
        parts += [f"groups {op.groups}"] * (op.groups > 1)
        parts += [f"dilation {op.dilation}"] * (op.dilation > 1)
        return ", ".join(parts)
    if kind in ("maxpool", "avgpool"):
        name = "max-pool" if kind == "maxpool" else "avg-pool"
        return f"{op.kernel}×{op.kernel} {name}" + (f", stride {op.stride}" if op.stride > 1 else "")
    if kind == "pad_shortcut":
        return f"stride-{op.stride} subsample + {op.pad_before}+{op.pad_after} zero channels"
    fixed = {
        "batchnorm": "BN",
        "relu": "ReLU",
        "gap": "global avg-pool",
        "flatten": "flatten",
        "add": "+",
        "input": "input",
    }
    if kind in fixed:
        return fixed[kind]
    if kind == "linear":
        return f"linear, {op.out_features}"
    if kind == "dropout":
        return f"dropout {op.p:g}"
    if kind == "se":
        return f"squeeze-excite, reduction {op.reduction}"
    attrs = ", ".join(f"{k}={v}" for k, v in op.attrs().items())
    return f"{kind}({attrs})" if attrs else kind


@dataclass
class Unit:
    """One drawn node: a group of IR nodes with its label rows."""

    key: int  # walk index of its first IR node; the DOT id is `n<key>`
    kind: str  # a key of STYLE
    nodes: list[int]
    rows: list[str]
    title: str = ""
    note: str = ""  # small italic line, e.g. who inserted a shortcut
    segment: int = 0  # index into Diagram.segments
    item: str = ""  # what column packing keeps together: an instance path or the unit itself

    @property
    def id(self) -> str:
        return f"n{self.key}"


@dataclass
class Edge:
    tail: str
    head: str
    shape: tuple | None
    style: str  # "main", "identity", "projection" or "pad"


@dataclass
class Segment:
    """A stage, a standalone block, or a run of network-level ops such as the stem."""

    name: str
    template: str = ""
    instances: list[str] = field(default_factory=list)


@dataclass
class Diagram:
    """The display units of one level, before they are laid out as DOT."""

    name: str
    level: str
    units: list[Unit]
    edges: list[Edge]
    segments: list[Segment]
    params: int
    macs: int
    policies: dict


# -- grouping ------------------------------------------------------------------


def fold(graph: nx.DiGraph, walk: list[int]) -> dict[int, int]:
    """Map each node to the first node of its group, BN/ReLU joined to their conv (or add)."""
    parent = {n: n for n in walk}

    def find(n: int) -> int:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    def context(n: int) -> tuple:
        data = graph.nodes[n]
        return data["block"], data["shortcut_of"]

    def backward(n: int) -> int | None:
        preds = operands(graph, n)
        if len(preds) == 1 and graph.out_degree(preds[0]) == 1 and context(preds[0]) == context(n):
            return preds[0] if graph.nodes[preds[0]]["op"].kind != "input" else None
        return None

    def forward(n: int) -> int | None:
        after = users(graph, n)
        if len(after) == 1 and graph.in_degree(after[0]) == 1 and context(after[0]) == context(n):
            return after[0]
        return None

    ahead = FOLD_FORWARD.get(graph.graph["policies"].get("norm"), ())
    for node in walk:
        kind = graph.nodes[node]["op"].kind
        if kind not in LIGHT:
            continue
        first, second = (forward, backward) if kind in ahead else (backward, forward)
        other = first(node) or second(node)
        if other is not None:
            parent[find(other)] = find(node)
    index = {n: i for i, n in enumerate(walk)}
    groups: dict[int, list[int]] = {}
    for node in walk:
        groups.setdefault(find(node), []).append(node)
    return {n: min(members, key=index.__getitem__) for members in groups.values() for n in members}


def _segments(graph: nx.DiGraph, walk: list[int]) -> tuple[list[Segment], dict[int, int]]:
    """Assign each node to a stage, a standalone block, or a run of network-level ops."""
    stage_of = {path: stage for stage, paths in graph.graph["stages"].items() for path in paths}
    instances = graph.graph["instances"]
    segments: list[Segment] = []
    by_name: dict[str, int] = {}
    of_node: dict[int, int] = {}
    run = None  # the open run of network-level ops
    for node in walk:
        block = graph.nodes[node]["block"]
        if block is None:
            if run is None:
                segments.append(Segment(""))
                run = len(segments) - 1
            of_node[node] = run
            continue
        run = None
        name = stage_of.get(block, block)
        if name not in by_name:
            by_name[name] = len(segments)
            segments.append(Segment(name, instances[block].template))
        segment = segments[by_name[name]]
        if block not in segment.instances:
            segment.instances.append(block)
        of_node[node] = by_name[name]
    blocks = [i for i, s in enumerate(segments) if s.instances]
    for index, segment in enumerate(segments):
        if not segment.instances and blocks:
            segment.name = "stem" if index < blocks[0] else "head" if index > blocks[-1] else ""
    return segments, of_node


def build(graph: nx.DiGraph, level: str = "block") -> Diagram:
    """Group the IR into the units and edges of one level."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    walk = order(graph)
    index = {n: i for i, n in enumerate(walk)}
    segments, segment_of = _segments(graph, walk)
    group = {n: n for n in walk} if level == "op" else fold(graph, walk)
    members: dict[int, list[int]] = {}
    for node in walk:
        members.setdefault(group[node], []).append(node)

    def label(nodes: list[int]) -> str:
        # A shortcut's output channels are on its outgoing edge; its label says how it maps.
        return " · ".join(op_label(graph.nodes[n]["op"], graph.nodes[n]["shortcut_of"] is None) for n in nodes)

    def rows(nodes: list[int]) -> list[str]:
        firsts = sorted({group[n] for n in nodes}, key=index.__getitem__)
        return [label(members[g]) for g in firsts]

    policies = graph.graph["policies"]
    units: list[Unit] = []
    unit_of: dict[int, Unit] = {}

    def new(kind: str, nodes: list[int], **attrs) -> Unit:
        nodes = sorted(nodes, key=index.__getitem__)
        unit = Unit(index[nodes[0]], kind, nodes, attrs.pop("rows", None) or rows(nodes), **attrs)
        unit.segment = segment_of[nodes[0]]
        unit.item = unit.item or unit.id
        units.append(unit)
        for n in nodes:
            unit_of[n] = unit
        return unit

    def shortcut_kind(node: int) -> str:
        add = graph.nodes[node]["shortcut_of"]
        return graph.nodes[add].get("shortcut_kind", "projection")

    def inserted_note(nodes: list[int]) -> str:
        if any(graph.nodes[n]["origin"] == PROJECTIONS for n in nodes):
            return f"inserted · shortcut policy {policies['shortcut']}"
        return ""

    if level == "stage":
        for i, segment in enumerate(segments):
            nodes = [n for n in walk if segment_of[n] == i]
            if not segment.instances:
                source = [n for n in nodes if graph.nodes[n]["op"].kind == "input"]
                if source:
                    new("input", source, rows=[f"input {shape_text(graph.nodes[source[0]]['shape'])}"])
                rest = [n for n in nodes if n not in source]
                if rest:
                    new("op", rest, title=segment.name)
            else:
                new("stage", nodes, title=segment.name, rows=_stage_rows(graph, segment, nodes))
    else:
        for first in sorted(members, key=index.__getitem__):
            nodes = members[first]
            data = graph.nodes[first]
            kinds = {graph.nodes[n]["op"].kind for n in nodes}
            if "input" in kinds:
                new("input", nodes, rows=[f"input {shape_text(data['shape'])}"])
            elif data["shortcut_of"] is not None:
                if level == "op":
                    new(
                        shortcut_kind(first),
                        nodes,
                        note=inserted_note(nodes),
                        item=data["block"] or "",
                        rows=[label(nodes), data["path"] or ""],
                    )
            elif "add" in kinds:
                new("add", nodes, item=data["block"] or "")
            elif data["block"] is None or level == "op":
                extra = [data["path"]] if level == "op" and data["path"] else []
                new("op", nodes, item=data["block"] or "", rows=[label(nodes)] + extra)
        if level == "block":
            _block_bodies(graph, walk, unit_of, new, inserted_note, shortcut_kind)

    units.sort(key=lambda u: u.key)
    edges: list[Edge] = []
    seen: set[tuple[str, str]] = set()
    for node in walk:
        for user in users(graph, node):
            tail, head = unit_of[node], unit_of[user]
            if tail is head or (tail.id, head.id) in seen:
                continue
            seen.add((tail.id, head.id))
            if head.kind in SHORTCUT_COLOR or tail.kind in SHORTCUT_COLOR:
                style = head.kind if head.kind in SHORTCUT_COLOR else tail.kind
            else:
                style = "identity" if graph.edges[node, user]["shortcut"] else "main"
            shown = None if style == "identity" or head.kind in SHORTCUT_COLOR else graph.nodes[node]["shape"]
            edges.append(Edge(tail.id, head.id, shown, style))
    last = walk[-1]
    edges.append(Edge(unit_of[last].id, "output", graph.nodes[last]["shape"], "main"))
    params, macs = totals(graph)
    return Diagram(graph.graph["name"], level, units, edges, segments, params, macs, policies)


def _block_bodies(graph, walk, unit_of, new, inserted_note, shortcut_kind) -> None:
    """Block level: each block's residual branch becomes one node, each shortcut chain another."""
    chains: dict[int, list[int]] = {}
    body: dict[str, list[int]] = {}
    for node in walk:
        data = graph.nodes[node]
        if data["shortcut_of"] is not None:
            chains.setdefault(data["shortcut_of"], []).append(node)
        elif node not in unit_of:
            body.setdefault(data["block"], []).append(node)
    for block, nodes in body.items():
        template = graph.graph["instances"][block].template
        for component in sorted(nx.connected_components(graph.subgraph(nodes).to_undirected()), key=min):
            new("body", list(component), title=block, note=template, item=block)
    for chain in chains.values():
        new(shortcut_kind(chain[0]), chain, note=inserted_note(chain), item=graph.nodes[chain[0]]["block"] or "")


def _stage_rows(graph: nx.DiGraph, segment: Segment, nodes: list[int]) -> list[str]:
    """`bottleneck ×6 · 512→1024 · 28×28→14×14`, and the stage's shortcuts."""
    inside = set(nodes)
    entry = next(p for n in nodes for p in operands(graph, n) if p not in inside)
    source, result = graph.nodes[entry]["shape"], graph.nodes[nodes[-1]]["shape"]

    def change(a, b) -> str:
        return a if a == b else f"{a}→{b}"

    parts = [f"{segment.template} ×{len(segment.instances)}"]
    if len(source) == len(result) == 3:
        parts += [change(str(source[0]), str(result[0])), change(shape_text(source[1:]), shape_text(result[1:]))]
    else:
        parts.append(change(shape_text(source), shape_text(result)))
    counts: dict[str, int] = {}
    for n in nodes:
        kind = graph.nodes[n].get("shortcut_kind")
        if graph.nodes[n]["op"].kind == "add" and kind:
            counts[kind] = counts.get(kind, 0) + 1
    shortcuts = ", ".join(f"{count} {kind}" for kind, count in sorted(counts.items()))
    return [" · ".join(parts)] + ([f"shortcuts: {shortcuts}"] if shortcuts else [])


# -- layout ----------------------------------------------------------------------


def _item_costs(diagram: Diagram) -> dict[str, int]:
    """Ranks each packing item needs: the longest path through its units."""
    by_item: dict[str, list[Unit]] = {}
    for unit in diagram.units:
        by_item.setdefault(unit.item, []).append(unit)
    costs = {}
    for item, units in by_item.items():
        depth = {u.id: 1 for u in units}
        for edge in diagram.edges:  # edges follow the walk, so one pass suffices
            if edge.tail in depth and edge.head in depth:
                depth[edge.head] = max(depth[edge.head], depth[edge.tail] + 1)
        costs[item] = max(depth.values())
    return costs


def pack(segments: list[list[tuple[str, int]]], limit: int) -> list[list[tuple[int, list[str]]]]:
    """Fill columns of at most `limit` ranks with whole segments, splitting those longer than a column.

    `segments` holds each segment's (item, cost) pairs; a column is a list of
    (segment index, items) pieces.
    """
    columns: list[list[tuple[int, list[str]]]] = [[]]
    used = 0
    for index, items in enumerate(segments):
        weight = sum(cost for _, cost in items)
        if used + weight <= limit or not columns[-1]:
            columns[-1].append((index, [item for item, _ in items]))
            used += weight
            continue
        if weight <= limit:
            columns.append([(index, [item for item, _ in items])])
            used = weight
            continue
        parts = math.ceil(weight / limit)
        pieces: list[list[str]] = [[] for _ in range(parts)]
        done = 0
        for item, cost in items:
            pieces[min(parts - 1, done * parts // weight)].append(item)
            done += cost
        for piece in pieces:
            columns.append([(index, piece)])
        used = sum(dict(items)[item] for item in pieces[-1])
    return columns


def balanced_pack(segments: list[list[tuple[str, int]]], limit: int) -> list[list[tuple[int, list[str]]]]:
    """The packing with as few columns as `limit` allows, and columns as even as possible."""
    columns = pack(segments, limit)
    total = sum(cost for items in segments for _, cost in items)
    for tighter in range(max(1, math.ceil(total / len(columns))), limit):
        candidate = pack(segments, tighter)
        if len(candidate) <= len(columns):
            return candidate
    return columns


def _html(text: str) -> str:
    return html.escape(text, quote=False)


def _label(unit: Unit) -> Html:
    lines = []
    if unit.title:
        title = f"<b>{_html(unit.title)}</b>"
        if unit.kind == "body" and unit.note:
            title += f' <font color="{GREY}">{_html(unit.note)}</font>'
        lines.append(title)
    lines += [_html(row) for row in unit.rows if row]
    if unit.note and unit.kind != "body":
        lines.append(f'<font point-size="9" color="{GREY}"><i>{_html(unit.note)}</i></font>')
    if unit.kind == "op" and len(unit.rows) > 1 and not unit.title:  # op level: the module path, small
        lines[-1] = f'<font point-size="9" color="{GREY}">{lines[-1]}</font>'
    return Html("<br/>".join(lines))


def _title(diagram: Diagram) -> Html:
    policies = diagram.policies
    lines = [
        f'<font point-size="18"><b>{_html(diagram.name)}</b></font>',
        f"{diagram.params:,} parameters · {diagram.macs:,} MACs ({diagram.macs / 1e9:.2f} G)",
        f'<font point-size="10" color="{GREY}">norm policy {_html(policies["norm"])} · '
        f"shortcut policy {_html(policies['shortcut'])}</font>",
    ]
    if diagram.level != "stage":
        kinds = {unit.kind for unit in diagram.units}
        legend = ["shortcuts: plain line = identity"]
        legend += ["orange = projection"] * ("projection" in kinds)
        legend += ["blue = subsample and zero-pad"] * ("pad" in kinds)
        if any(unit.note for unit in diagram.units if unit.kind in SHORTCUT_COLOR):
            legend.append("dashed = inserted by the compiler")
        lines.append(f'<font point-size="10" color="{GREY}">{_html("; ".join(legend))}</font>')
    return Html("<br/>".join(lines))


def emit(graph: nx.DiGraph, level: str = "block", rankdir: str = "TB") -> str:
    """The DOT text of one level's diagram."""
    if rankdir not in RANKDIRS:
        raise ValueError(f"rankdir must be TB or LR, got {rankdir!r}")
    return to_dot(build(graph, level), rankdir)


def to_dot(diagram: Diagram, rankdir: str = "TB") -> str:
    dot = Digraph(diagram.name)
    dot.attr(
        rankdir=rankdir,
        newrank="true",
        nodesep="0.25",
        ranksep="0.3",
        labelloc="t",
        fontname=FONT,
        label=_title(diagram),
    )
    dot.attr("node", fontname=FONT, fontsize="11", margin="0.12,0.05", height="0.3")
    dot.attr("edge", fontname=FONT, fontsize="9", fontcolor=GREY, color="#343a40", arrowsize="0.6")

    def node(target, unit: Unit) -> None:
        attrs = dict(STYLE[unit.kind])
        if unit.kind in SHORTCUT_COLOR and unit.note:
            attrs["style"] += ",dashed"
        if unit.kind == "add" and len(unit.nodes) > 1:  # `+ · ReLU` does not fit a small circle
            attrs["shape"] = "ellipse"
        target.node(unit.id, _label(unit), **attrs)

    entries: dict[tuple[str, int], str] = {}  # (tail, column) -> the column's entry point
    column_of: dict[str, int] = {}
    if diagram.level == "stage":
        for unit in diagram.units:
            node(dot, unit)
            column_of[unit.id] = 0
    else:
        _columns(dot, diagram, node, column_of, rankdir)
    dot.node("output", "output", **STYLE["output"])
    column_of["output"] = column_of[diagram.edges[-1].tail]

    for edge in diagram.edges:
        attrs = {"label": shape_text(edge.shape)} if edge.shape else {}
        if edge.style in SHORTCUT_COLOR:
            attrs.update(color=SHORTCUT_COLOR[edge.style], penwidth="1.4")
        head = edge.head
        if column_of[edge.tail] < column_of[head]:
            # Wrapping to the next column: enter it through a point at its top, so a
            # shortcut leaving the previous column still bypasses its block locally.
            column = column_of[head]
            entry = entries.get((edge.tail, column))
            if entry is None:
                entry = entries[(edge.tail, column)] = f"{edge.tail}_to_col{column}"
                with dot.subgraph(f"cluster_col{column}_0") as first:
                    first.node(entry, "", shape="point", width="0.06", color=GREY)
                dot.edge(edge.tail, entry, constraint="false", style="dashed", color="#adb5bd", arrowhead="none")
            dot.edge(entry, head, **attrs)
            continue
        dot.edge(edge.tail, head, **attrs)
    return dot.source


def _columns(dot, diagram: Diagram, node, column_of: dict[str, int], rankdir: str) -> None:
    """Pack the segments into columns and write one cluster per piece of a segment."""
    costs = _item_costs(diagram)
    items_of: list[list[str]] = [[] for _ in diagram.segments]
    units_of: dict[str, list[Unit]] = {}
    for unit in diagram.units:
        if unit.item not in units_of:
            items_of[unit.segment].append(unit.item)
        units_of.setdefault(unit.item, []).append(unit)
    segments = [[(item, costs[item]) for item in items] for items in items_of]
    columns = balanced_pack(segments, COLUMN_RANKS[diagram.level, rankdir])
    for column, pieces in enumerate(columns):
        for number, (index, items) in enumerate(pieces):
            segment = diagram.segments[index]
            with dot.subgraph(f"cluster_col{column}_{number}") as cluster:
                cluster.attr(
                    label=_piece_title(segment, items),
                    style="rounded,dashed",
                    color="#ced4da",
                    fontsize="12",
                    labeljust="l",
                    margin="10",
                )
                for item in items:
                    units = units_of[item]
                    if diagram.level == "op" and segment.instances and item in segment.instances and len(units) > 1:
                        with cluster.subgraph(f"cluster_{units[0].id}") as block:
                            block.attr(label=item, style="rounded", color="#dee2e6", fontsize="10")
                            for unit in units:
                                node(block, unit)
                    else:
                        for unit in units:
                            node(cluster, unit)
                    for unit in units:
                        column_of[unit.id] = column


def _piece_title(segment: Segment, items: list[str]) -> str:
    if not segment.instances:
        return segment.name
    count = len(segment.instances)
    if segment.name in segment.instances:  # a standalone block
        return f"{segment.name} · {segment.template}"
    title = f"{segment.name} · {segment.template} ×{count}"
    blocks = [segment.instances.index(i) for i in items if i in segment.instances]
    if len(blocks) < count:
        title += f" (blocks {blocks[0]}–{blocks[-1]})"
    return title


def render(dot_source: str, fmt: str) -> bytes:
    """An image (svg, png or pdf) of DOT text, drawn by Graphviz's `dot` program."""
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"format must be one of {', '.join(IMAGE_FORMATS)}, got {fmt!r}")
    try:
        run = subprocess.run(["dot", f"-T{fmt}"], input=dot_source.encode("utf-8"), capture_output=True, check=False)
    except FileNotFoundError:
        raise RenderError(
            f"writing {fmt.upper()} needs Graphviz's `dot` program, which is not on PATH; install the "
            "graphviz package (Debian/Ubuntu: apt-get install graphviz, macOS: brew install graphviz), "
            "or write the diagram as DOT with `-o FILE.dot`"
        ) from None
    if run.returncode != 0:
        message = run.stderr.decode("utf-8", "replace").strip()
        raise RenderError(f"Graphviz's `dot` failed on this diagram: {message or f'exit code {run.returncode}'}")
    return run.stdout
