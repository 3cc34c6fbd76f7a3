"""The model of a network diagram, shared by its two writers: DOT (backends/dot.py) and HTML (backends/interactive.py).

The IR is grouped into display units at three levels of detail:
  stage   the input, the stem, one unit per stage of repeated blocks, the head
  block   one unit per residual branch (its convs summarised, one per line), a
          `+` unit per residual add, one per shortcut chain (a projection or a
          subsampling shortcut), one per network-level op; a pre-activation that
          a block's branch and projection share is a unit of its own, so that
          both visibly leave from it
  op      one unit per IR op
BatchNorm and ReLU are folded into the op they belong to at the block and stage
levels, on the side the norm policy places them ("3×3 conv, 64 · BN · ReLU").
Every unit's IR nodes are known, so the levels nest: each op unit lies in one
block unit, each block unit in one stage unit (`nesting`).

All per-op label text is in `op_label`. Nothing here imports torch, onnx or graphviz.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import networkx as nx

from ..ir.graph import operands, order, shape_text, users
from ..passes.projections import NAME as PROJECTIONS
from .cost import macs, params

LEVELS = ("stage", "block", "op")
LIGHT = ("batchnorm", "relu")
# Light ops drawn with the op after them, by norm policy; otherwise with the op before.
FOLD_FORWARD = {"pre": ("batchnorm", "relu"), "relu_preact": ("relu",)}
SHORTCUT_KINDS = ("projection", "pad")  # unit kinds drawn on a shortcut, in its colour


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
    """One drawn node: a group of IR nodes with its label rows and what a reader asks of it."""

    key: int  # walk index of its first IR node; the same at every level, so units of all levels share one id space
    kind: str  # input, op, body, stage, add, projection or pad
    nodes: list[int]
    rows: list[str]
    title: str = ""
    note: str = ""  # small italic line, e.g. who inserted a shortcut
    segment: int = 0  # index into Diagram.segments
    item: str = ""  # what is kept together (a column's piece, an expansion): an instance path or the unit itself
    path: str = ""  # the module path that holds it: `layer2.0.downsample`, `layer2.0`, `layer2`
    inputs: list[tuple] = field(default_factory=list)  # shapes entering from other units
    output: tuple = ()  # shape leaving it
    params: int = 0
    macs: int = 0

    @property
    def id(self) -> str:
        return f"n{self.key}"


@dataclass
class Edge:
    tail: str
    head: str
    shape: tuple  # the tensor on the edge
    style: str  # "main", "identity", "projection" or "pad"


@dataclass
class Segment:
    """A stage, a standalone block, or a run of network-level ops such as the stem."""

    name: str
    template: str = ""
    instances: list[str] = field(default_factory=list)


@dataclass
class Diagram:
    """The display units of one level."""

    name: str
    level: str
    units: list[Unit]
    edges: list[Edge]
    segments: list[Segment]
    params: int
    macs: int
    policies: dict


def edge_style(tail_kind: str, head_kind: str, shortcut: bool) -> str:
    """How an edge is drawn: in a shortcut's colour when it enters or leaves one, else by whether it bypasses."""
    if head_kind in SHORTCUT_KINDS:
        return head_kind
    if tail_kind in SHORTCUT_KINDS:
        return tail_kind
    return "identity" if shortcut else "main"


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
                    new("input", source, rows=[f"input {shape_text(graph.nodes[source[0]]['shape'])}"], path="input")
                rest = [n for n in nodes if n not in source]
                if rest:
                    new("op", rest, title=segment.name, path=segment.name)
            else:
                rows_ = _stage_rows(graph, segment, nodes)
                new("stage", nodes, title=segment.name, rows=rows_, path=segment.name, item=segment.name)
    else:
        for first in sorted(members, key=index.__getitem__):
            nodes = members[first]
            data = graph.nodes[first]
            kinds = {graph.nodes[n]["op"].kind for n in nodes}
            if "input" in kinds:
                new("input", nodes, rows=[f"input {shape_text(data['shape'])}"], path="input")
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
            _block_bodies(graph, walk, index, unit_of, new, inserted_note, shortcut_kind)

    units.sort(key=lambda u: u.key)
    for unit in units:
        _describe(graph, unit, unit_of, segments)
    edges: list[Edge] = []
    seen: set[tuple[str, str]] = set()
    for node in walk:
        for user in users(graph, node):
            tail, head = unit_of[node], unit_of[user]
            if tail is head or (tail.id, head.id) in seen:
                continue
            seen.add((tail.id, head.id))
            style = edge_style(tail.kind, head.kind, graph.edges[node, user]["shortcut"])
            edges.append(Edge(tail.id, head.id, graph.nodes[node]["shape"], style))
    last = walk[-1]
    edges.append(Edge(unit_of[last].id, "output", graph.nodes[last]["shape"], "main"))
    total_params = sum(unit.params for unit in units)
    total_macs = sum(unit.macs for unit in units)
    return Diagram(graph.graph["name"], level, units, edges, segments, total_params, total_macs, policies)


def _block_bodies(graph, walk, index, unit_of, new, inserted_note, shortcut_kind) -> None:
    """Block level: each block's residual branch becomes one unit, each shortcut chain another.

    Where a projection reads the branch's pre-activation (full pre-activation
    shares it, as the paper's code does), the branch up to that point is a unit
    of its own, so the projection and the rest of the branch leave from it side by side.
    """
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
        for component in sorted(nx.weakly_connected_components(graph.subgraph(nodes)), key=min):
            ordered = sorted(component, key=index.__getitem__)
            forks = [n for n in ordered if any(graph.nodes[u]["shortcut_of"] is not None for u in users(graph, n))]
            if forks and forks[-1] != ordered[-1]:
                cut = ordered.index(forks[-1]) + 1
                new("op", ordered[:cut], item=block, note="pre-activation")
                ordered = ordered[cut:]
            new("body", ordered, title=block, note=template, item=block)
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


def _describe(graph: nx.DiGraph, unit: Unit, unit_of: dict[int, Unit], segments: list[Segment]) -> None:
    """Fill in what a reader asks of a unit: its module path, shapes in and out, parameters and MACs."""
    inside = set(unit.nodes)
    for node in unit.nodes:
        for operand in operands(graph, node):
            shape = graph.nodes[operand]["shape"]
            if operand not in inside and shape not in unit.inputs:
                unit.inputs.append(shape)
    leaving = [n for n in unit.nodes if not graph.succ[n] or any(u not in inside for u in graph.succ[n])]
    unit.output = graph.nodes[(leaving or unit.nodes)[-1]]["shape"]
    unit.params = sum(params(graph, n) for n in unit.nodes)
    unit.macs = sum(macs(graph, n) for n in unit.nodes)
    if not unit.path:
        paths = [graph.nodes[n]["path"] for n in unit.nodes if graph.nodes[n]["path"]]
        common = os.path.commonprefix([p.split(".") for p in paths]) if paths else []
        block = graph.nodes[unit.nodes[0]]["block"]
        unit.path = ".".join(common) or ", ".join(paths) or block or segments[unit.segment].name


@dataclass
class Nesting:
    """The three levels of one network and how their units nest, for a view that expands them in place."""

    levels: dict[str, Diagram]
    # level -> unit id -> id of the unit one level up that holds it (ids repeat across levels: keys are walk indices)
    parent: dict[str, dict[str, str]]


def nesting(graph: nx.DiGraph) -> Nesting:
    levels = {level: build(graph, level) for level in LEVELS}
    parent: dict[str, dict[str, str]] = {"stage": {}}
    for upper, lower in zip(LEVELS, LEVELS[1:], strict=False):
        holder = {n: unit.id for unit in levels[upper].units for n in unit.nodes}
        parent[lower] = {unit.id: holder[unit.nodes[0]] for unit in levels[lower].units}
    return Nesting(levels, parent)
