"""The invariants every pass keeps, checked after each one (passes/__init__.py).

A failure is a bug in resdsl, never a mistake in the spec: it raises
VerifyError. The checks are
  graph   a DAG with one input node (the only source) and one output (the only sink), or
          several `output` nodes (the network's named outputs) as its only sinks
  ops     each node has exactly its op's arity of operands, at positions 0…n-1,
          and attributes of its op's types and ranges (`Op.problems`)
  shapes  once set, each shape is what the op's shape rule gives for its operands'
  paths   ops that are modules have a module path under their parent's, paths are
          unique, functional ops have none; references (branch, shortcut_of,
          residual source) point at nodes in the graph
  tree    stages hold block instances named 0…n-1, each instance is listed by its
          template, sequences hold ops named 0…n-1, every node's parent is in the tree
"""

from __future__ import annotations

from ..diagnostics import Collector
from ..ops.base import Op, ShapeReport
from .graph import IR, VerifyError
from .node import Node, Origin
from .tree import Module, ModuleKind


def verify(ir: IR, after: str) -> None:
    """Check every invariant of `ir` once (the pass pipeline keeps one Verifier for all its checks)."""
    Verifier()(ir, after)


class Verifier:
    """Checks the IR's invariants after each pass, not redoing what cannot have changed.

    Every invariant about one node depends only on its op, shape, operands,
    module and references; and a shape rule, on the operands' shapes too. So a
    node whose fields and operands are the ones it was last verified with, and
    whose operands kept their shapes, is still valid and is not checked again.
    The checks that depend on the structure alone (one input and one output,
    the module tree) run when nodes, edges or modules changed; acyclicity and
    unique paths, every time.
    """

    def __init__(self) -> None:
        self.verified: dict[Node, tuple] = {}  # node → the state it was last verified in
        # Each node's operands with their positions, and the graph structure they were read from.
        self.operands: dict[Node, list[tuple[int, Node]]] = {}
        self.modules: set[Module] = set()  # the module tree
        # Ops are immutable and their shape rules pure: an op object that passed stays sound,
        # and a rule's answer for given operand shapes stays the same (blocks repeat a few ops).
        self.sound_ops: dict[int, Op] = {}  # id → op (kept alive, so ids stay unique)
        self.rules: dict[tuple[Op, tuple], tuple[int, ...] | None] = {}
        self.report = ShapeReport(Collector(), None, "")  # the rules' own messages are not wanted here
        self.structure: int | None = None
        self.present: set[Node] = set()  # the nodes of the graph, as of `structure`
        self.graph_problems: list[str] = []  # the tree's and the sources' and sinks', as of `structure`

    def __call__(self, ir: IR, after: str) -> None:
        try:
            walk = ir.walk()
        except VerifyError:
            raise VerifyError(f"after {after}: the graph has a cycle") from None
        if ir.structure() != self.structure:
            self._structure(ir, walk)
        problems = list(self.graph_problems)
        modules, operands, present = self.modules, self.operands, self.present
        paths: set[str] = set()
        reshaped: set[Node] = set()  # nodes whose shape is not the one last verified: their users' rules rerun
        verified = self.verified
        for node in walk:
            inputs = operands[node]
            if node.path is not None:
                if node.path in paths:
                    problems.append(f"{node} has module path {node.path!r}, which another module has")
                paths.add(node.path)
            state = (node.op, node.shape, node.parent, node.path, node.branch, node.shortcut_of, node.residual, inputs)
            seen = verified.get(node)
            if seen == state and not (reshaped and any(operand in reshaped for _, operand in inputs)):
                continue
            if seen is None or seen[1] != node.shape:
                reshaped.add(node)
            found = len(problems)
            self._node(ir, node, inputs, modules, present, problems)
            if len(problems) == found:
                verified[node] = state
        if problems:
            raise VerifyError(f"after {after}: " + "; ".join(problems[:5]))

    def _structure(self, ir: IR, walk: list[Node]) -> None:
        """What depends on the nodes, edges and modules alone: recomputed only when they change."""
        present = set(walk)
        if any(node not in present for node in self.verified):
            self.verified = {}  # a node went: whatever referred to it is checked again
        problems: list[str] = []
        self.modules = set(_tree(ir, problems))
        self.operands, sinks = _operands(ir, walk)
        sources = [node for node in walk if not self.operands[node]]
        if len(sources) != 1 or sources[0].op.kind != "input":
            problems.append(f"expected one input, found {sources}")
        outputs = [node for node in sinks if node.op.kind == "output"]
        if len(sinks) != 1 and (not outputs or len(outputs) != len(sinks)):
            problems.append(f"expected one output, or output nodes only, found {sinks}")
        if any(self.operands[node] and node.op.kind == "output" and node not in sinks for node in walk):
            problems.append("an output node has users")
        self.present, self.graph_problems, self.structure = present, problems, ir.structure()

    def _node(self, ir: IR, node: Node, inputs: list, modules: set, present: set, problems: list[str]) -> None:
        """Every check about one node."""
        op = node.op
        positions = [pos for pos, _ in inputs]
        if positions != list(range(op.operand_count())):
            problems.append(f"{node} has operand positions {positions}; {op.kind} takes {op.operand_count()}")
        if id(op) not in self.sound_ops:
            wrong = op.problems()
            problems.extend(f"{node}: {problem}" for problem in wrong)
            if not wrong:
                self.sound_ops[id(op)] = op
        if node.parent not in modules:
            problems.append(f"{node} lives in {node.parent}, which is not in the module tree")
        if op.is_module:
            _path(node, problems)
        elif node.path is not None:
            problems.append(f"{node} is functional but has module path {node.path!r}")
        _references(node, present, problems)
        if node.shape is not None:
            self._shape(ir, node, tuple([operand.shape for _, operand in inputs]), problems)

    def _shape(self, ir: IR, node: Node, shapes: tuple, problems: list[str]) -> None:
        expected: tuple[int, ...] | None
        if node.op.arity == 0:
            expected = ir.input_shape
        elif None in shapes:
            problems.append(f"{node} has a shape but an operand has none")
            return
        else:
            key = (node.op, shapes)
            if key not in self.rules:
                self.rules[key] = node.op.infer(shapes, self.report)
            expected = self.rules[key]
        if tuple(node.shape) != expected:  # type: ignore[arg-type]  # the caller checked it is set
            problems.append(f"{node} has shape {node.shape}; its shape rule gives {expected}")


def _operands(ir: IR, walk: list[Node]) -> tuple[dict[Node, list[tuple[int, Node]]], list[Node]]:
    """Every node's operands with their positions, in position order, and the nodes nothing reads."""
    operands: dict[Node, list[tuple[int, Node]]] = {node: [] for node in walk}
    sinks = []
    for source, users in ir.graph.adjacency():
        if not users:
            sinks.append(source)
        for user, edge in users.items():
            operands[user].append((edge["pos"], source))
    for inputs in operands.values():
        if len(inputs) > 1:
            inputs.sort(key=_position)
    return operands, sinks


def _position(entry: tuple[int, Node]) -> int:
    return entry[0]


def _references(node: Node, present: set[Node], problems: list[str]) -> None:
    residual = node.residual
    for ref in (node.branch, node.shortcut_of, residual.source if residual is not None else None):
        if ref is not None and ref not in present:
            problems.append(f"{node} refers to {ref}, which is not in the graph")
    if (residual is not None) != (node.op.kind == "add"):
        problems.append(f"{node}: only residual adds carry residual information")


def _tree(ir: IR, problems: list[str]):
    """Check the module tree's shape; yields every module in it."""
    if ir.root.kind is not ModuleKind.NETWORK or ir.root.parent is not None:
        problems.append("the tree's root is not the network")
    instances: dict[str, set] = {}
    for module in ir.root.walk():
        yield module
        if module.kind is ModuleKind.STAGE:
            kinds = {child.kind for child in module.children}
            names = [child.name for child in module.children]
            if kinds - {ModuleKind.BLOCK} or names != [str(i) for i in range(len(names))]:
                problems.append(f"stage {module.path} holds {names} of kinds {sorted(k.value for k in kinds)}")
        if module.kind is ModuleKind.BLOCK:
            template = module.template
            if template is not None and template.name not in instances:
                instances[template.name] = set(template.instances)
            listed = template is not None and module in instances[template.name]
            if template is None or ir.templates.get(template.name) is not template or not listed:
                problems.append(f"block {module.path} is not an instance of a known template")
        if module.kind is ModuleKind.LIST and (module.parent is None or module.parent.kind is not ModuleKind.BLOCK):
            problems.append(f"list {module.path} is not a block's")
        if module.kind is ModuleKind.SEQUENCE and module.children:
            problems.append(f"sequence {module.path} holds modules; it numbers ops")


def _path(node: Node, problems: list[str]) -> None:
    expected = node.parent.prefix()
    path = node.path
    if not path or not path.startswith(expected):
        problems.append(f"{node} has module path {path!r}; expected a path under {expected!r}")
        return
    # `projection_names = named`: a projection's members are named as timm's resnetv2 names them.
    named = node.origin is Origin.PROJECTION and path[len(expected) :] in ("pool", "conv", "bn", "norm")
    if node.parent.kind is ModuleKind.SEQUENCE and not path[len(expected) :].isdigit() and not named:
        problems.append(f"{node} in a sequence is not numbered")
