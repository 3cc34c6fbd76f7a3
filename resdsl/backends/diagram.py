"""The model of a network diagram, shared by its two writers: DOT (backends/dot.py) and HTML (backends/interactive.py).

The IR is grouped into display units at three levels of detail:
  stage   the input, the stem, one unit per stage of repeated blocks, the head
  block   one unit per residual branch (its convs summarised, one per line; a
          block called inside it one line, `se = squeeze(64, 16)`), a `+` unit
          per residual add, one per shortcut chain (a projection or a
          subsampling shortcut), one per network-level op; a pre-activation that
          a block's branch and projection share is a unit of its own, so that
          both visibly leave from it
  op      one unit per IR op
Norms and activations are folded into the op they belong to at the block and
stage levels, on the side the norm policy places them ("3×3 conv, 64 · BN · ReLU").
Every unit's IR nodes are known, so the levels nest: each op unit lies in one
block unit, each block unit in one stage unit (`nesting`).

Units are grouped by the module that is a child of the network or of a stage:
a block instance (with the blocks it calls), or a network-level `seq`. Every
label is its op's own `label()`. Nothing here imports torch or onnx.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import networkx as nx

from ..ir.cost import macs, params
from ..ir.graph import IR
from ..ir.node import Node, Origin
from ..ir.policies import Policies
from ..ir.shape import Shape, shape_text
from ..ir.tree import Module, ModuleKind
from ..ops.base import Op

LEVELS = ("stage", "block", "op")
LIGHT = ("norm", "act")  # op families folded into the op they belong to
# Families drawn with the op after them, by norm policy; otherwise with the op before.
FOLD_FORWARD = {"pre": ("norm", "act"), "relu_preact": ("act",)}
SHORTCUT_KINDS = ("projection", "pad")  # unit kinds drawn on a shortcut, in its colour


def op_label(op: Op, channels: bool = True) -> str:
    """A short, paper-style description of one op: its definition's own `label`."""
    return op.label(channels)


@dataclass
class Unit:
    """One drawn node: a group of IR nodes with its label rows and what a reader asks of it."""

    key: int  # walk index of its first IR node; the same at every level, so units of all levels share one id space
    kind: str  # input, op, body, stage, add, projection or pad
    nodes: list[Node]
    rows: list[str]
    title: str = ""
    note: str = ""  # small italic line, e.g. who inserted a shortcut
    segment: int = 0  # index into Diagram.segments
    item: str = ""  # what is kept together (a column's piece, an expansion): a module path or the unit itself
    path: str = ""  # the module path that holds it: `layer2.0.downsample`, `layer2.0`, `layer2`
    # Op level: the modules between `item` and the op, outermost first, as (path, template):
    # a block called inside a block (`layer1.0.se`, "squeeze"), or a `seq` ("" for its template).
    nest: list[tuple[str, str]] = field(default_factory=list)
    inputs: list[Shape] = field(default_factory=list)  # shapes entering from other units
    output: Shape = ()  # shape leaving it
    params: int = 0
    macs: int = 0

    @property
    def id(self) -> str:
        return f"n{self.key}"


@dataclass
class Edge:
    tail: str
    head: str
    shape: Shape  # the tensor on the edge
    style: str  # "main", "identity", "projection", "pad", or "size" (a tensor read for its size only)


@dataclass
class Segment:
    """A stage, a standalone block, or a run of network-level ops such as the stem."""

    name: str
    template: str = ""
    instances: list[str] = field(default_factory=list)
    templates: list[str] = field(default_factory=list)  # each instance's template, in order

    def blocks(self) -> str:
        """`bottleneck ×6`; a stage whose blocks differ by runs: `bottle2neck_first, bottle2neck ×3`."""
        runs: list[list] = []
        for name in self.templates:
            if runs and runs[-1][0] == name:
                runs[-1][1] += 1
            else:
                runs.append([name, 1])
        return ", ".join(f"{name} ×{count}" if count > 1 or len(runs) == 1 else name for name, count in runs)


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
    policies: Policies


def edge_style(tail_kind: str, head_kind: str, shortcut: bool) -> str:
    """How an edge is drawn: in a shortcut's colour when it enters or leaves one, else by whether it bypasses."""
    if head_kind in SHORTCUT_KINDS:
        return head_kind
    if tail_kind in SHORTCUT_KINDS:
        return tail_kind
    return "identity" if shortcut else "main"


# -- where a node lives ------------------------------------------------------------


def holder(node: Node) -> Module | None:
    """The module that is a child of the network or of a stage and holds `node`; None at network level.

    A block instance (the blocks it calls lie inside it), or a network-level `seq`, also one in a group
    (`stages.1.downsample`: each stage's is its own), or the group that holds an op itself.
    """
    module = node.parent
    if module.kind is ModuleKind.NETWORK:
        return None
    outer = (ModuleKind.NETWORK, ModuleKind.STAGE, ModuleKind.GROUP)
    while module.parent is not None and module.parent.kind not in outer:
        module = module.parent
    return module


def _top_block(node: Node) -> Module | None:
    """The block instance a stage or the network holds that `node` lies in (None: network level)."""
    top = holder(node)
    return top if top is not None and top.kind is ModuleKind.BLOCK else None


def _nest(node: Node, top: Module | None) -> list[Module]:
    """The blocks and spec sequences between `top` and `node`, outermost first (a shortcut's own sequence left out)."""
    chain = []
    module: Module | None = node.parent
    while module is not None and module is not top and module.kind is not ModuleKind.NETWORK:
        inserted = node.shortcut_of is not None and module is node.parent  # `downsample`: drawn as the shortcut
        if module.kind in (ModuleKind.BLOCK, ModuleKind.SEQUENCE) and not inserted:
            chain.append(module)
        module = module.parent
    return chain[::-1]


def _call_text(module: Module) -> str:
    """A block called inside a block, as the spec writes the call: `se = squeeze(64, 16)`."""
    assert module.template is not None

    def value(v: object) -> str:
        return str(v).lower() if isinstance(v, bool) else str(v)

    return f"{module.name} = {module.template.name}({', '.join(value(v) for v in module.args.values())})"


# -- grouping ------------------------------------------------------------------


def fold(ir: IR, walk: list[Node]) -> dict[Node, Node]:
    """Map each node to the first node of its group, norms and activations joined to their conv (or add)."""
    parent = {n: n for n in walk}
    graph = ir.graph

    def find(n: Node) -> Node:
        while parent[n] is not n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    def context(n: Node) -> tuple:
        # Nothing folds across a module's edge: a `seq` ending in a bare conv keeps it, as the spec wrote it.
        return n.block, n.shortcut_of, _item(n)

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
        family = next((f for f in node.op.families if f in LIGHT), None)
        if family is None:
            continue
        first, second = (forward, backward) if family in ahead else (backward, forward)
        other = first(node) or second(node)
        if other is not None:
            parent[find(other)] = find(node)
    index = {n: i for i, n in enumerate(walk)}
    groups: dict[Node, list[Node]] = {}
    for node in walk:
        groups.setdefault(find(node), []).append(node)
    return {n: min(members, key=index.__getitem__) for members in groups.values() for n in members}


def _segments(walk: list[Node]) -> tuple[list[Segment], dict[Node, int]]:
    """Assign each node to a stage, a standalone block, or a run of network-level ops."""
    segments: list[Segment] = []
    by_name: dict[str, int] = {}
    of_node: dict[Node, int] = {}
    run = None  # the open run of network-level ops
    for node in walk:
        block = _top_block(node)
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
            segment.templates.append(block.template.name)
        of_node[node] = by_name[name]
    blocks = [i for i, s in enumerate(segments) if s.instances]
    for index, segment in enumerate(segments):
        if not segment.instances and blocks:
            segment.name = "stem" if index < blocks[0] else "head" if index > blocks[-1] else ""
    return segments, of_node


def _item(node: Node) -> str:
    """What keeps `node` together with others: the path of its block instance or network-level `seq`."""
    top = holder(node)
    return top.path if top is not None else ""


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
    segments, segment_of = _segments(walk)
    group = {n: n for n in walk} if level == "op" else fold(ir, walk)
    members: dict[Node, list[Node]] = {}
    for node in walk:
        members.setdefault(group[node], []).append(node)

    def label(nodes: list[Node]) -> str:
        # A shortcut's output channels are on its outgoing edge; its label says how it maps.
        return " · ".join(op_label(n.op, n.shortcut_of is None) for n in nodes)

    def rows(nodes: list[Node], calls: bool = False) -> list[str]:
        # One row per fold group; with `calls`, a block called inside the unit's own block is one row.
        shown: dict[object, str] = {}
        for node in nodes:
            called = [m for m in _nest(node, _top_block(node)) if m.kind is ModuleKind.BLOCK] if calls else []
            if called:
                shown.setdefault(called[0], _call_text(called[0]))
            elif node.op.kind == "chunk" and calls:  # a split's pieces: one row
                shown.setdefault(("split", *ir.operands(node)), f"split into {node.op.count}")  # type: ignore[attr-defined]
            elif group[node] not in shown:
                shown[group[node]] = label(members[group[node]])
        return list(shown.values())

    units = _Units(walk, segment_of, rows)
    if level == "stage":
        _stage_units(ir, walk, segments, segment_of, units)
    else:
        _op_units(ir, level, members, units, label)
        if level == "block":
            _block_bodies(ir, walk, units)
    units.units.sort(key=lambda u: u.key)
    for unit in units.units:
        _describe(ir, unit, segments)
    edges = _edges(ir, walk, units)
    last = walk[-1]
    assert last.shape is not None
    if not ir.outputs():  # one output: the edge into the diagram's `output`; named ones are units
        edges.append(Edge(units.unit_of[last].id, "output", last.shape, "main"))
    total_params = sum(unit.params for unit in units.units)
    total_macs = sum(unit.macs for unit in units.units)
    return Diagram(ir.name, level, units.units, edges, segments, total_params, total_macs, ir.policies)


def _edges(ir: IR, walk: list[Node], units: _Units) -> list[Edge]:
    """One edge per pair of units an IR edge joins, in walk order, styled by what it carries."""
    edges: list[Edge] = []
    seen: set[tuple[str, str]] = set()
    for node in walk:
        for user in ir.users(node):
            tail, head = units.unit_of[node], units.unit_of[user]
            if tail is head or (tail.id, head.id) in seen:
                continue
            seen.add((tail.id, head.id))
            style = edge_style(tail.kind, head.kind, ir.is_shortcut_edge(node, user))
            if ir.graph.get_edge_data(node, user)["pos"] >= user.op.value_operands():
                style = "size"  # `upsample(to=NAME)`: NAME lends its height and width only
            assert node.shape is not None
            edges.append(Edge(tail.id, head.id, node.shape, style))
    return edges


def _stage_units(ir: IR, walk: list[Node], segments: list[Segment], segment_of: dict[Node, int], units: _Units) -> None:
    for i, segment in enumerate(segments):
        nodes = [n for n in walk if segment_of[n] == i]
        if not segment.instances:
            source = [n for n in nodes if n.op.kind == "input"]
            if source:
                units.new("input", source, rows=[f"input {shape_text(ir.input_shape)}"], path="input")
            outputs = [n for n in nodes if n.op.kind == "output"]
            rest = [n for n in nodes if n not in source and n not in outputs]
            if rest and ir.outputs() and segment.name != "stem":
                _network_ops(ir, rest, units)  # a network that branches (an FPN): each layer drawn, not one box
            elif rest:
                units.new("op", rest, title=segment.name, path=segment.name)
            for node in outputs:
                units.new("output", [node], rows=[f"output {node.name}"], path=node.name or "")
        else:
            rows = _stage_rows(ir, segment, nodes)
            units.new("stage", nodes, title=segment.name, rows=rows, path=segment.name, item=segment.name)


def _network_ops(ir: IR, nodes: list[Node], units: _Units) -> None:
    """Stage level, in a network with named outputs: its network-level layers one unit each (norms and
    activations folded in), so that the paths between the stages (an FPN's pyramid) show."""
    group = fold(ir, ir.walk())
    members: dict[Node, list[Node]] = {}
    for node in nodes:
        members.setdefault(group[node], []).append(node)
    for first, inside in members.items():
        kind = "add" if first.op.kind in ("add", "sum") else "op"
        name = first.path or first.name or ""
        rows = [" · ".join(op_label(n.op) for n in inside)]
        units.new(kind, inside, rows=rows, path=name, title=name if kind == "op" else "")


def _op_units(ir: IR, level: str, members: dict[Node, list[Node]], units: _Units, label) -> None:
    """The units of the block and op levels, apart from block bodies."""
    for first in sorted(members, key=units.index.__getitem__):
        nodes = members[first]
        kinds = {n.op.kind for n in nodes}
        item = _item(first)
        nest = [(m.path, m.template.name if m.template else "") for m in _nest(first, holder(first))]
        if "input" in kinds:
            units.new("input", nodes, rows=[f"input {shape_text(ir.input_shape)}"], path="input")
        elif "output" in kinds:
            units.new("output", nodes, rows=[f"output {first.name}"], path=first.name or "")
        elif first.shortcut_of is not None:
            if level == "op":
                note = _inserted_note(nodes, ir.policies)
                rows = [label(nodes), first.path or ""]
                units.new(_shortcut_kind(first), nodes, note=note, item=item, rows=rows, nest=nest)
        elif "add" in kinds or ("sum" in kinds and (_top_block(first) is None or level == "op")):
            # A plain sum inside a block (Res2Net's piece plus the conv before) is part of its body.
            units.new("add", nodes, item=item, nest=nest if level == "op" else [])
        elif _top_block(first) is None or level == "op":
            extra = [first.path] if level == "op" and first.path else []
            units.new("op", nodes, item=item, rows=[label(nodes)] + extra, nest=nest if level == "op" else [])


def _block_bodies(ir: IR, walk: list[Node], units: _Units) -> None:
    """Block level: each block's residual branch becomes one unit, each shortcut chain another.

    Where a projection reads the branch's pre-activation (full pre-activation
    shares it, as the paper's code does), the branch up to that point is a unit
    of its own, so the projection and the rest of the branch leave from it side by side.
    """
    chains: dict[Node, list[Node]] = {}
    body: dict[Module, list[Node]] = {}
    for node in walk:
        if node.shortcut_of is not None:
            chains.setdefault(node.shortcut_of, []).append(node)
        elif node not in units.unit_of:
            block = _top_block(node)
            assert block is not None  # network-level ops are units already
            body.setdefault(block, []).append(node)
    for block, nodes in body.items():
        assert block.template is not None
        template = block.template.name
        components = nx.weakly_connected_components(ir.graph.subgraph(nodes))
        for component in sorted(components, key=lambda c: min(units.index[n] for n in c)):
            ordered = sorted(component, key=units.index.__getitem__)
            forks = [n for n in ordered if any(u.shortcut_of is not None for u in ir.users(n))]
            if forks and forks[-1] is not ordered[-1]:
                cut = ordered.index(forks[-1]) + 1
                units.new("op", ordered[:cut], item=block.path, note="pre-activation")
                ordered = ordered[cut:]
            rows = units.label_rows(ordered, calls=True)
            units.new("body", ordered, title=block.path, note=template, item=block.path, path=block.path, rows=rows)
    for chain in chains.values():
        units.new(_shortcut_kind(chain[0]), chain, note=_inserted_note(chain, ir.policies), item=_item(chain[0]))


def _stage_rows(ir: IR, segment: Segment, nodes: list[Node]) -> list[str]:
    """`bottleneck ×6 · 512→1024 · 28×28→14×14`, and the stage's shortcuts."""
    inside = set(nodes)
    entry = next(p for n in nodes for p in ir.operands(n) if p not in inside)
    source, result = entry.shape, nodes[-1].shape
    assert source is not None and result is not None

    def change(a, b) -> str:
        return a if a == b else f"{a}→{b}"

    parts = [segment.blocks()]
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


def _describe(ir: IR, unit: Unit, segments: list[Segment]) -> None:
    """Fill in what a reader asks of a unit: its module path, shapes in and out, parameters and MACs."""
    inside = set(unit.nodes)
    for node in unit.nodes:
        for operand in ir.operands(node):
            if operand not in inside and operand.shape not in unit.inputs:
                assert operand.shape is not None
                unit.inputs.append(operand.shape)
    graph = ir.graph
    leaving = [n for n in unit.nodes if not graph.succ[n] or any(u not in inside for u in graph.succ[n])]
    output = (leaving or unit.nodes)[-1].shape
    assert output is not None
    unit.output = output
    unit.params = sum(params(ir, n) for n in unit.nodes)
    unit.macs = sum(macs(ir, n) for n in unit.nodes)
    if not unit.path:
        paths = [n.path for n in unit.nodes if n.path]
        block = unit.nodes[0].block
        if unit.kind in SHORTCUT_KINDS and paths:  # `layer2.0.downsample`: the sequence that holds the chain
            unit.path = ".".join(os.path.commonprefix([p.split(".") for p in paths]))
        else:
            unit.path = ", ".join(paths) or (block.path if block else "") or segments[unit.segment].name


@dataclass
class Nesting:
    """The three levels of one network and how their units nest, for a view that expands them in place."""

    levels: dict[str, Diagram]
    # level -> unit id -> id of the unit one level up that holds it (ids repeat across levels: keys are walk indices)
    parent: dict[str, dict[str, str]]


def nesting(ir: IR) -> Nesting:
    levels = {level: build(ir, level) for level in LEVELS}
    parent: dict[str, dict[str, str]] = {"stage": {}}
    for upper, lower in zip(LEVELS, LEVELS[1:], strict=False):
        holds = {n: unit.id for unit in levels[upper].units for n in unit.nodes}
        parent[lower] = {unit.id: holds[unit.nodes[0]] for unit in levels[lower].units}
    return Nesting(levels, parent)
