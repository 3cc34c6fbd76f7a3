"""The IR: a networkx.DiGraph with one node per op.

Node attributes
  op        the op record (ir/ops.py)
  path      module path such as `layer2.0.downsample.0` (ops with parameters), else None
  name      the local name the spec gave the op's output, if any
  span      the spec text that caused the node
  origin    "spec", or the name of the pass that inserted it ("norm", "projections")
  shape     output shape (C, H, W) or (F,), set by shape inference
  block     the block instance the node belongs to (`layer2.0`), None at network level
  template  that instance's block template
  exprs     Python source of op attributes in the template's own terms (`planes * 4`),
            for readable generated code
  branch    the add node whose residual branch holds this node, if any
  auto_norm for a conv: True when the norm policy places BatchNorm/ReLU around it, False for
            none, "post" for conv→BN→ReLU whatever the policy (the spec's `norm=` argument)
  shortcut_of  for nodes on an inserted shortcut: the add node they feed
  shortcut_from  for a residual add, once projections are placed: the tensor its
            shortcut names (a projection under full pre-activation reads that
            tensor's pre-activation instead: see `preactivation`)
  zero_init for a BatchNorm: its γ starts at zero (policy zero_init_last); absent otherwise
Edge attributes
  pos       operand position (networkx does not order predecessors)
  shortcut  True for the shortcut operand of a residual add

Node ids are increasing integers in creation order; walking in topological
order with the id as tie-breaker makes every output reproducible.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import networkx as nx

from ..diagnostics import Diagnostic, ResdslError
from .ops import Op


@dataclass
class TemplateInfo:
    """What the PyTorch backend needs of a block template to write its class."""

    name: str
    params: list[tuple[str, str | None]]  # (name, Python source of the default)
    lets: list[tuple[str, str]]  # (name, Python source), in spec order
    expansion: int | None
    span: object


@dataclass
class Instance:
    """One use of a block template: `layer2.0` of `bottleneck`."""

    path: str
    template: str
    args: dict[str, object]  # every parameter's value, defaults included
    explicit: list[str]  # parameters the call site spelled out
    span: object
    nodes: list[int] = field(default_factory=list)


# The policies a network may set, with their defaults. `norm` and `shortcut`
# are always shown; the others only where a spec or --set changed them.
POLICY_DEFAULTS = {
    "norm": "post",
    "shortcut": "B",
    "projection": "conv",
    "output_stride": "none",
    "zero_init_last": "false",
}


def policy_text(graph: nx.DiGraph) -> str:
    """`norm=post, shortcut=B`, plus every other policy that differs from its default."""
    policies = graph.graph["policies"]
    shown = sorted(k for k, v in policies.items() if k in ("norm", "shortcut") or v != POLICY_DEFAULTS.get(k))
    return ", ".join(f"{k}={policies[k]}" for k in shown)


def new_graph(name: str) -> nx.DiGraph:
    graph = nx.DiGraph(name=name)
    graph.graph.update(next_id=0, templates={}, instances={}, stages={}, policies={})
    return graph


def shape_text(shape) -> str:
    """`64×56×56`, as every message, table and diagram writes a shape."""
    return "×".join(str(d) for d in shape)


def add_node(graph: nx.DiGraph, op: Op, operands: list[int], *, span, origin: str = "spec", **attrs) -> int:
    node = graph.graph["next_id"]
    graph.graph["next_id"] = node + 1
    attrs.setdefault("path", None)
    attrs.setdefault("name", None)
    attrs.setdefault("block", None)
    attrs.setdefault("template", None)
    attrs.setdefault("exprs", {})
    attrs.setdefault("branch", None)
    attrs.setdefault("shortcut_of", None)
    graph.add_node(node, op=op, span=span, origin=origin, shape=None, **attrs)
    for pos, operand in enumerate(operands):
        graph.add_edge(operand, node, pos=pos, shortcut=op.kind == "add" and pos > 0)
    return node


def operands(graph: nx.DiGraph, node: int) -> list[int]:
    """Predecessors of `node` in operand order."""
    preds = graph._pred[node]
    return sorted(preds, key=lambda p: preds[p]["pos"])


def users(graph: nx.DiGraph, node: int) -> list[int]:
    return sorted(graph.succ[node])


class VerifyError(AssertionError):
    """The IR broke an invariant: a bug in resdsl, not in the spec."""


def order(graph: nx.DiGraph) -> list[int]:
    """The one deterministic walk every pass and backend uses: topological, smallest id first.

    The same walk as `nx.lexicographical_topological_sort(graph, key=lambda n: n)`,
    written over networkx's adjacency dicts (`_pred`, `_succ`, as its own
    algorithms read them): the public views build an object per node, which
    made this walk a third of compile time on deep networks.
    Raises VerifyError on a cycle.
    """
    succ = graph._succ
    waiting = {node: len(preds) for node, preds in graph._pred.items()}
    ready = [node for node, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    walk = []
    while ready:
        node = heapq.heappop(ready)
        walk.append(node)
        for user in succ[node]:
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, user)
    if len(walk) != len(waiting):
        raise VerifyError("the graph has a cycle")
    return walk


def redirect(graph: nx.DiGraph, old: int, new: int, *, skip: int | None = None) -> None:
    """Make every user of `old` (except `skip`) read `new` instead, keeping operand positions."""
    for user in list(graph.succ[old]):
        if user == skip or user == new:
            continue
        data = graph.edges[old, user]
        graph.remove_edge(old, user)
        graph.add_edge(new, user, **data)


def insert_after(graph: nx.DiGraph, node: int, op: Op, **attrs) -> int:
    """Insert a one-operand op between `node` and all of its users."""
    new = add_node(graph, op, [node], **attrs)
    redirect(graph, node, new, skip=new)
    return new


def insert_before(graph: nx.DiGraph, node: int, op: Op, **attrs) -> int:
    """Insert a one-operand op between `node`'s single operand and `node`."""
    (operand,) = operands(graph, node)
    new = add_node(graph, op, [operand], **attrs)
    data = graph.edges[operand, node]
    graph.remove_edge(operand, node)
    graph.add_edge(new, node, **data)
    return new


def preactivation(graph: nx.DiGraph, tensor: int, add: int) -> int | None:
    """The ReLU ending the BatchNorm → ReLU that `add`'s residual branch applies to `tensor`, if any.

    Under full pre-activation a branch starts BN → ReLU → conv on its block's
    input. The paper's reference code (resnet-1k-layers) shares that
    pre-activation with the shortcut of a unit that changes dimensions.
    """
    for bn in sorted(graph._succ[tensor]):
        data = graph._node[bn]
        if data["op"].kind == "batchnorm" and data["origin"] == "norm" and data["branch"] == add:
            users = list(graph._succ[bn])
            if len(users) == 1 and graph._node[users[0]]["op"].kind == "relu":
                return users[0]
    return None


def remove_passthrough(graph: nx.DiGraph, node: int, keep: int) -> None:
    """Delete `node`, handing its users the operand `keep`."""
    redirect(graph, node, keep)
    graph.remove_node(node)


def check_inserted_paths(graph: nx.DiGraph, origin: str) -> None:
    """Raise E0209 where a module path inserted by the pass `origin` is taken by a spec layer.

    A path clashes when it equals a spec layer's path or one is the other's
    parent (`l.downsample` vs `l.downsample.0`): both name one attribute.
    """
    spec: dict[str, int] = {}  # path → node, for the layers the pass did not insert
    parents: dict[str, int] = {}  # every proper prefix of those paths → a node below it
    for node in graph:
        path = graph.nodes[node]["path"]
        if path and graph.nodes[node]["origin"] != origin:
            spec[path] = node
            parts = path.split(".")
            for i in range(1, len(parts)):
                parents.setdefault(".".join(parts[:i]), node)
    errors = []
    for node in sorted(graph):
        data = graph.nodes[node]
        if data["origin"] != origin or not data["path"]:
            continue
        parts = data["path"].split(".")
        taken = [spec[p] for p in (".".join(parts[:i]) for i in range(len(parts), 0, -1)) if p in spec]
        if not taken and data["path"] in parents:
            taken = [parents[data["path"]]]
        if taken:
            user = graph.nodes[taken[0]]
            errors.append(
                Diagnostic(
                    "E0209",
                    f"layer `{user['path']}` clashes with the {data['op'].kind} that the {origin} pass inserts "
                    f"as `{data['path']}`",
                    user["span"],
                    "this name is taken",
                    "rename this layer",
                )
            )
    if errors:
        raise ResdslError(errors)


def verify(graph: nx.DiGraph, after: str) -> None:
    """Check the invariants every pass must keep (one sweep over the adjacency: it runs after every pass)."""
    try:
        order(graph)
    except VerifyError:
        raise VerifyError(f"after {after}: the graph has a cycle") from None
    sources = [n for n, preds in graph._pred.items() if not preds]
    sinks = [n for n, users in graph._succ.items() if not users]
    if len(sources) != 1 or graph.nodes[sources[0]]["op"].kind != "input":
        raise VerifyError(f"after {after}: expected one input, found {sources}")
    if len(sinks) != 1:
        raise VerifyError(f"after {after}: expected one output, found {sinks}")
    for node, preds in graph._pred.items():
        positions = sorted(edge["pos"] for edge in preds.values())
        if positions != list(range(len(positions))):
            raise VerifyError(f"after {after}: node {node} has operand positions {positions}")
    paths = [data["path"] for data in graph._node.values() if data["path"]]
    if len(paths) != len(set(paths)):
        raise VerifyError(f"after {after}: duplicate module paths")


def dump(graph: nx.DiGraph) -> str:
    """A stable text form of the IR, one node per line (`resdsl build --emit ir`)."""
    names = {}
    lines = [f"network {graph.graph['name']}  # policies: " + policy_text(graph)]
    for index, node in enumerate(order(graph)):
        data = graph.nodes[node]
        names[node] = f"%{index}"
        op = data["op"]
        args = ", ".join(
            names[o] + (" (shortcut)" if graph.edges[o, node]["shortcut"] else "") for o in operands(graph, node)
        )
        attrs = ", ".join(f"{k}={v}" for k, v in op.attrs().items())
        shape = "x".join(str(d) for d in data["shape"]) if data["shape"] else "?"
        where = f"{data['span'].location}" if data["span"] else ""
        label = data["path"] or data["name"] or ""
        line = f"  %{index} = {op.kind}({attrs})"
        line += f"({args})" if args else ""
        line += f" -> {shape}"
        if label:
            line += f"  [{label}]"
        line += f"  # {data['origin']}"
        if where:
            line += f" @ {where}"
        lines.append(line)
    return "\n".join(lines) + "\n"
