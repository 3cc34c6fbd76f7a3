"""The IR: a networkx.DiGraph of Node records, the module tree, and the network's settings.

The graph's nodes are the Node records themselves (ir/node.py); an edge
carries one attribute, `pos`, the operand position (networkx does not order
predecessors); operand 1 of a residual add is its shortcut. The graph
changes only through IR's methods, which count the changes, so that what is
derived from its structure (the walk) can be kept. Everything else the
compiler knows about the network lives in typed fields of `IR`: none in the
graph's own attribute dicts. docs/internals.md lists every field with
who writes it and who reads it.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from dataclasses import replace

import networkx as nx

from ..diagnostics import Span
from ..ops.base import Op
from .node import DroppedAdd, Node, Origin, Residual
from .policies import Policies
from .shape import Shape
from .tree import Module, ModuleKind, Template


class VerifyError(AssertionError):
    """The IR broke an invariant: a bug in resdsl, not in the spec."""


class IR:
    """One network: its graph of ops, its module tree, its input and its policies."""

    def __init__(self, name: str, input_shape: Shape, policies: Policies, source: str, span: Span | None = None):
        self.name = name
        self.input_shape = input_shape
        self.policies = policies
        self.source = source  # the spec's file name as given (for headers, never a folder)
        self.graph = nx.DiGraph()
        self.root = Module(name, ModuleKind.NETWORK, span=span)
        self.templates: dict[str, Template] = {}  # by name, in first-use order
        self.dropped: list[DroppedAdd] = []  # the adds the shortcut policy removed, in walk order
        self._ids = itertools.count()
        # The last walk, kept until the graph changes (`_changes` counts the changes).
        self._changes = 0
        self._walk: tuple[int, list[Node]] | None = None

    # -- building -------------------------------------------------------------

    def add(
        self,
        op: Op,
        operands: list[Node],
        *,
        parent: Module,
        span: Span | None,
        origin: Origin = Origin.SPEC,
        **fields,
    ) -> Node:
        """A new node computing `op` over `operands` (in order)."""
        node = Node(next(self._ids), op, origin, span, parent, **fields)
        self._changes += 1
        self.graph.add_node(node)
        for pos, operand in enumerate(operands):
            self.graph.add_edge(operand, node, pos=pos)
        return node

    def module(self, name: str, kind: ModuleKind, parent: Module, span: Span | None, **fields) -> Module:
        """A new module of the tree, under `parent`."""
        self._changes += 1
        return Module(name, kind, parent, span, **fields)

    def redirect(self, old: Node, new: Node, *, skip: Node | None = None) -> None:
        """Make every user of `old` (except `skip`) read `new` instead, keeping operand positions."""
        self._changes += 1
        for user in self.users(old):
            if user is skip or user is new:
                continue
            data = self.graph.get_edge_data(old, user)
            self.graph.remove_edge(old, user)
            self.graph.add_edge(new, user, **data)

    def insert_after(self, node: Node, op: Op, **fields) -> Node:
        """Insert a one-operand op between `node` and all of its users."""
        new = self.add(op, [node], **fields)
        self.redirect(node, new, skip=new)
        return new

    def insert_before(self, node: Node, op: Op, **fields) -> Node:
        """Insert a one-operand op between `node`'s single operand and `node`."""
        (operand,) = self.operands(node)
        new = self.add(op, [operand], **fields)
        self.replace_operand(node, operand, new)
        return new

    def replace_operand(self, node: Node, old: Node, new: Node) -> None:
        """`node` reads `new` where it read `old`, at the same position."""
        self._changes += 1
        data = self.graph.get_edge_data(old, node)
        self.graph.remove_edge(old, node)
        self.graph.add_edge(new, node, **data)

    def remove_passthrough(self, node: Node, keep: Node) -> None:
        """Delete `node`, handing its users the operand `keep`."""
        self.redirect(node, keep)
        self.remove(node)

    def connect(self, operand: Node, node: Node, pos: int) -> None:
        """`node` reads `operand` as its operand number `pos`."""
        self._changes += 1
        self.graph.add_edge(operand, node, pos=pos)

    def disconnect(self, operand: Node, node: Node) -> None:
        """`node` no longer reads `operand` (the caller renumbers or removes `node`)."""
        self._changes += 1
        self.graph.remove_edge(operand, node)

    def remove(self, node: Node) -> None:
        """Delete `node` and its edges (the caller rewires its users)."""
        self._changes += 1
        self.graph.remove_node(node)

    # -- reading ----------------------------------------------------------------

    def __iter__(self) -> Iterator[Node]:
        """Every node, in creation order."""
        return iter(sorted(self.graph, key=_id))

    def __len__(self) -> int:
        return self.graph.number_of_nodes()

    def __contains__(self, node: object) -> bool:
        return node in self.graph

    def operands(self, node: Node) -> list[Node]:
        """The operands of `node` in position order."""
        found = list(self.graph.predecessors(node))  # cheaper than a view of the edges: most ops have one
        if len(found) < 2:
            return found
        preds = self.graph.pred[node]
        return sorted(found, key=lambda p: preds[p]["pos"])

    def users(self, node: Node) -> list[Node]:
        """The nodes reading `node`, in creation order."""
        return sorted(self.graph.successors(node), key=_id)

    def is_shortcut_edge(self, operand: Node, node: Node) -> bool:
        """Whether `operand` feeds `node` as a residual add's shortcut (operand 1)."""
        return node.residual is not None and self.graph.get_edge_data(operand, node)["pos"] == 1

    def walk(self) -> list[Node]:
        """The one deterministic walk every pass and backend uses: topological, smallest id first.

        Raises VerifyError on a cycle. Callers may keep and change the list they get.
        """
        key = self.structure()
        if self._walk is None or self._walk[0] != key:
            self._walk = (key, self._topological())
        return list(self._walk[1])

    def structure(self) -> int:
        """A key that changes whenever nodes, edges or modules do: what is derived from them alone may be kept."""
        return self._changes

    def _topological(self) -> list[Node]:
        # `adjacency()` hands out networkx's own successor dicts: one sweep, no view per node.
        succ = dict(self.graph.adjacency())
        waiting = dict.fromkeys(succ, 0)
        for users in succ.values():
            for user in users:
                waiting[user] += 1
        by_id = {node.id: node for node in succ}
        ready = [node.id for node, count in waiting.items() if count == 0]
        heapq.heapify(ready)
        walk = []
        push, pop = heapq.heappush, heapq.heappop
        while ready:
            node = by_id[pop(ready)]
            walk.append(node)
            for user in succ[node]:
                count = waiting[user] - 1
                waiting[user] = count
                if count == 0:
                    push(ready, user.id)
        if len(walk) != len(waiting):
            raise VerifyError("the graph has a cycle")
        return walk

    def outputs(self) -> list[Node]:
        """The network's named outputs (`return p2, p3`), in the statement's order; empty for a network
        with one output, its last op."""
        return [node for node in self if node.op.kind == "output"]

    def input_node(self) -> Node:
        return next(node for node in self.graph if node.op.arity == 0)

    def shortcut_chains(self) -> dict[Node, list[Node]]:
        """For each residual add with an inserted shortcut, the inserted nodes in walk order."""
        chains: dict[Node, list[Node]] = {}
        for node in self.walk():
            if node.shortcut_of is not None:
                chains.setdefault(node.shortcut_of, []).append(node)
        return chains

    def preactivation(self, tensor: Node, add: Node) -> Node | None:
        """The activation ending the norm → activation that `add`'s residual branch applies to `tensor`, if any
        (BatchNorm → ReLU by default; a norm that is its own activation, such as EvoNorm-S0, alone).

        Under full pre-activation a branch starts BN → ReLU → conv on its block's
        input. The paper's reference code (resnet-1k-layers) shares that
        pre-activation with the shortcut of a unit that changes dimensions. It is shared only where
        the add's own module computes it: one inside a group or sequence of the network (a network-level
        add around a grouped stem) is no variable the shortcut's module could read.
        """
        for norm in self.users(tensor):
            if norm.parent is not add.parent:
                continue
            if "norm" in norm.op.families and norm.origin is Origin.NORM and norm.branch is add:
                after = self.users(norm)
                if len(after) == 1 and "act" in after[0].op.families and after[0].origin is Origin.NORM:
                    return after[0]
                if norm.op.includes_act():  # EvoNorm-S0, FRN with its TLU: the norm is the activation too
                    return norm
        return None

    # -- copying ----------------------------------------------------------------

    def copy(self) -> IR:
        """An IR whose nodes can change without touching this one's (the module tree is shared)."""
        twin = IR.__new__(IR)
        twin.__dict__.update(self.__dict__)
        clones = {node: replace(node) for node in self.graph}
        for clone in clones.values():
            clone.exprs = dict(clone.exprs)
            clone.branch = clones.get(clone.branch) if clone.branch is not None else None
            clone.shortcut_of = clones.get(clone.shortcut_of) if clone.shortcut_of is not None else None
            if clone.residual is not None:
                source = clone.residual.source
                clone.residual = Residual(clone.residual.index, clone.residual.kind, clones.get(source, source))
        twin.graph = nx.relabel_nodes(self.graph, clones, copy=True)
        twin._walk = None
        twin._ids = itertools.count(max((node.id for node in self.graph), default=-1) + 1)
        return twin


def _id(node: Node) -> int:
    return node.id
