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

from ..ir.cost import totals
from ..ir.graph import IR
from ..ir.node import Node, Origin
from ..ir.policies import Policies
from ..ir.shape import Shape, shape_text
from ..ir.tree import ModuleKind
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
    """A short, paper-style description of one op (its own `label`)."""
    return op.label(channels)


@dataclass
class Unit:
    """One drawn node: a group of IR nodes with its label rows."""

    key: int  # walk index of its first IR node; the DOT id is `n<key>`
    kind: str  # a key of STYLE
    nodes: list[Node]
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
    shape: Shape | None
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
    policies: Policies


# -- grouping ------------------------------------------------------------------


def fold(ir: IR, walk: list[Node]) -> dict[Node, Node]:
    """Map each node to the first node of its group, BN/ReLU joined to their conv (or add)."""
    parent = {n: n for n in walk}
    graph = ir.graph

    def find(n: Node) -> Node:
        while parent[n] is not n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    def context(n: Node) -> tuple:
        return n.block, n.shortcut_of

    def backward(n: Node) -> Node | None:
        preds = ir.operands(n)
        if len(preds) == 1 and graph.out_degree(preds[0]) == 1 and context(preds[0]) == context(n):
            return preds[0] if preds[0].op.kind != "input" else None
        return None

    def forward(n: Node) -> Node | None:
        after = ir.users(n)
        if len(after) == 1 and graph.in_degree(after[0]) == 1 and context(after[0]) == context(n):
            return after[0]
        return None

    ahead = FOLD_FORWARD.get(ir.policies.norm, ())
    for node in walk:
        kind = node.op.kind
        if kind not in LIGHT:
            continue
        first, second = (forward, backward) if kind in ahead else (backward, forward)
        other = first(node) or second(node)
        if other is not None:
            parent[find(other)] = find(node)
    index = {n: i for i, n in enumerate(walk)}
    groups: dict[Node, list[Node]] = {}
    for node in walk:
        groups.setdefault(find(node), []).append(node)
    return {n: min(members, key=index.__getitem__) for members in groups.values() for n in members}


def _segments(ir: IR, walk: list[Node]) -> tuple[list[Segment], dict[Node, int]]:
    """Assign each node to a stage, a standalone block, or a run of network-level ops."""
    segments: list[Segment] = []
    by_name: dict[str, int] = {}
    of_node: dict[Node, int] = {}
    run = None  # the open run of network-level ops
    for node in walk:
        block = node.block
        if block is None:
            if run is None:
                segments.append(Segment(""))
                run = len(segments) - 1
            of_node[node] = run
            continue
        run = None
        assert block.template is not None and block.parent is not None
        name = block.parent.path if block.parent.kind is ModuleKind.STAGE else block.path
        if name not in by_name:
            by_name[name] = len(segments)
            segments.append(Segment(name, block.template.name))
        segment = segments[by_name[name]]
        if block.path not in segment.instances:
            segment.instances.append(block.path)
        of_node[node] = by_name[name]
    blocks = [i for i, s in enumerate(segments) if s.instances]
    for index, segment in enumerate(segments):
        if not segment.instances and blocks:
            segment.name = "stem" if index < blocks[0] else "head" if index > blocks[-1] else ""
    return segments, of_node


def _block_path(node: Node) -> str:
    """The path of the block instance `node` belongs to; "" at network level."""
    block = node.block
    return block.path if block is not None else ""


def _shortcut_kind(node: Node) -> str:
    """How the shortcut that `node` belongs to is drawn: `projection` or `pad`."""
    add = node.shortcut_of
    assert add is not None and add.residual is not None and add.residual.kind is not None
    return add.residual.kind.value


def _inserted_note(nodes: list[Node], policies: Policies) -> str:
    if any(n.origin is Origin.PROJECTION for n in nodes):
        return f"inserted · shortcut policy {policies.shortcut}"
    return ""


class _Units:
    """The units of one level as they are made, and which unit holds each node."""

    def __init__(self, walk: list[Node], segment_of: dict[Node, int], label_rows):
        self.index = {n: i for i, n in enumerate(walk)}
        self.segment_of = segment_of
        self.label_rows = label_rows
        self.units: list[Unit] = []
        self.unit_of: dict[Node, Unit] = {}

    def new(self, kind: str, nodes: list[Node], **attrs) -> Unit:
        nodes = sorted(nodes, key=self.index.__getitem__)
        unit = Unit(self.index[nodes[0]], kind, nodes, attrs.pop("rows", None) or self.label_rows(nodes), **attrs)
        unit.segment = self.segment_of[nodes[0]]
        unit.item = unit.item or unit.id
        self.units.append(unit)
        for n in nodes:
            self.unit_of[n] = unit
        return unit


def build(ir: IR, level: str = "block") -> Diagram:
    """Group the IR into the units and edges of one level."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    walk = ir.walk()
    segments, segment_of = _segments(ir, walk)
    group = {n: n for n in walk} if level == "op" else fold(ir, walk)
    members: dict[Node, list[Node]] = {}
    for node in walk:
        members.setdefault(group[node], []).append(node)

    def label(nodes: list[Node]) -> str:
        # A shortcut's output channels are on its outgoing edge; its label says how it maps.
        return " · ".join(op_label(n.op, n.shortcut_of is None) for n in nodes)

    def rows(nodes: list[Node]) -> list[str]:
        firsts = sorted({group[n] for n in nodes}, key=units.index.__getitem__)
        return [label(members[g]) for g in firsts]

    units = _Units(walk, segment_of, rows)
    if level == "stage":
        _stage_units(ir, walk, segments, segment_of, units)
    else:
        _op_units(ir, level, members, units, label)
        if level == "block":
            _block_bodies(ir, walk, units)
    units.units.sort(key=lambda u: u.key)
    params, macs = totals(ir)
    return Diagram(ir.name, level, units.units, _edges(ir, walk, units.unit_of), segments, params, macs, ir.policies)


def _stage_units(ir: IR, walk: list[Node], segments: list[Segment], segment_of: dict[Node, int], units: _Units) -> None:
    for i, segment in enumerate(segments):
        nodes = [n for n in walk if segment_of[n] == i]
        if not segment.instances:
            source = [n for n in nodes if n.op.kind == "input"]
            if source:
                units.new("input", source, rows=[f"input {shape_text(ir.input_shape)}"])
            rest = [n for n in nodes if n not in source]
            if rest:
                units.new("op", rest, title=segment.name)
        else:
            units.new("stage", nodes, title=segment.name, rows=_stage_rows(ir, segment, nodes))


def _op_units(ir: IR, level: str, members: dict[Node, list[Node]], units: _Units, label) -> None:
    """The units of the block and op levels, apart from block bodies."""
    for first in sorted(members, key=units.index.__getitem__):
        nodes = members[first]
        kinds = {n.op.kind for n in nodes}
        item = _block_path(first)
        if "input" in kinds:
            units.new("input", nodes, rows=[f"input {shape_text(ir.input_shape)}"])
        elif first.shortcut_of is not None:
            if level == "op":
                note = _inserted_note(nodes, ir.policies)
                units.new(_shortcut_kind(first), nodes, note=note, item=item, rows=[label(nodes), first.path or ""])
        elif "add" in kinds:
            units.new("add", nodes, item=item)
        elif first.block is None or level == "op":
            extra = [first.path] if level == "op" and first.path else []
            units.new("op", nodes, item=item, rows=[label(nodes)] + extra)


def _edges(ir: IR, walk: list[Node], unit_of: dict[Node, Unit]) -> list[Edge]:
    edges: list[Edge] = []
    seen: set[tuple[str, str]] = set()
    for node in walk:
        for user in ir.users(node):
            tail, head = unit_of[node], unit_of[user]
            if tail is head or (tail.id, head.id) in seen:
                continue
            seen.add((tail.id, head.id))
            if head.kind in SHORTCUT_COLOR or tail.kind in SHORTCUT_COLOR:
                style = head.kind if head.kind in SHORTCUT_COLOR else tail.kind
            else:
                style = "identity" if ir.is_shortcut_edge(node, user) else "main"
            shown = None if style == "identity" or head.kind in SHORTCUT_COLOR else node.shape
            edges.append(Edge(tail.id, head.id, shown, style))
    last = walk[-1]
    edges.append(Edge(unit_of[last].id, "output", last.shape, "main"))
    return edges


def _block_bodies(ir: IR, walk: list[Node], units: _Units) -> None:
    """Block level: each block's residual branch becomes one node, each shortcut chain another."""
    chains: dict[Node, list[Node]] = {}
    body: dict = {}
    for node in walk:
        if node.shortcut_of is not None:
            chains.setdefault(node.shortcut_of, []).append(node)
        elif node not in units.unit_of:
            body.setdefault(node.block, []).append(node)
    for block, nodes in body.items():
        template = block.template.name
        components = nx.connected_components(ir.graph.subgraph(nodes).to_undirected())
        for component in sorted(components, key=lambda c: min(n.id for n in c)):
            units.new("body", list(component), title=block.path, note=template, item=block.path)
    for chain in chains.values():
        note = _inserted_note(chain, ir.policies)
        units.new(_shortcut_kind(chain[0]), chain, note=note, item=_block_path(chain[0]))


def _stage_rows(ir: IR, segment: Segment, nodes: list[Node]) -> list[str]:
    """`bottleneck ×6 · 512→1024 · 28×28→14×14`, and the stage's shortcuts."""
    inside = set(nodes)
    entry = next(p for n in nodes for p in ir.operands(n) if p not in inside)
    source, result = entry.shape, nodes[-1].shape
    assert source is not None and result is not None

    def change(a, b) -> str:
        return a if a == b else f"{a}→{b}"

    parts = [f"{segment.template} ×{len(segment.instances)}"]
    if len(source) == len(result) == 3:
        parts += [change(str(source[0]), str(result[0])), change(shape_text(source[1:]), shape_text(result[1:]))]
    else:
        parts.append(change(shape_text(source), shape_text(result)))
    counts: dict[str, int] = {}
    for n in nodes:
        if n.residual is not None and n.residual.kind is not None:
            kind = n.residual.kind.value
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
        f'<font point-size="10" color="{GREY}">norm policy {_html(policies.norm)} · '
        f"shortcut policy {_html(policies.shortcut)}</font>",
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


def emit(ir: IR, level: str = "block", rankdir: str = "TB") -> str:
    """The DOT text of one level's diagram."""
    if rankdir not in RANKDIRS:
        raise ValueError(f"rankdir must be TB or LR, got {rankdir!r}")
    return to_dot(build(ir, level), rankdir)


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
