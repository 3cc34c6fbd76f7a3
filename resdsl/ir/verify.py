"""The invariants every pass keeps, checked after each one (passes/__init__.py).

A failure is a bug in resdsl, never a mistake in the spec: it raises
VerifyError. The checks are
  graph   a DAG with one input node (the only source) and one output (the only sink)
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
from ..ops.base import ShapeReport
from .graph import IR, VerifyError
from .node import Node
from .tree import ModuleKind


def verify(ir: IR, after: str) -> None:
    try:
        walk = ir.walk()
    except VerifyError:
        raise VerifyError(f"after {after}: the graph has a cycle") from None
    problems: list[str] = []
    _graph(ir, walk, problems)
    modules = set(_tree(ir, problems))
    paths: set[str] = set()
    for node in walk:
        _node(ir, node, modules, paths, problems)
    if problems:
        raise VerifyError(f"after {after}: " + "; ".join(problems[:5]))


def _graph(ir: IR, walk: list[Node], problems: list[str]) -> None:
    graph = ir.graph
    sources = [n for n in walk if graph.in_degree(n) == 0]
    sinks = [n for n in walk if graph.out_degree(n) == 0]
    if len(sources) != 1 or sources[0].op.kind != "input":
        problems.append(f"expected one input, found {sources}")
    if len(sinks) != 1:
        problems.append(f"expected one output, found {sinks}")


def _tree(ir: IR, problems: list[str]):
    """Check the module tree's shape; yields every module in it."""
    if ir.root.kind is not ModuleKind.NETWORK or ir.root.parent is not None:
        problems.append("the tree's root is not the network")
    for module in ir.root.walk():
        yield module
        if module.kind is ModuleKind.STAGE:
            kinds = {child.kind for child in module.children}
            names = [child.name for child in module.children]
            if kinds - {ModuleKind.BLOCK} or names != [str(i) for i in range(len(names))]:
                problems.append(f"stage {module.path} holds {names} of kinds {sorted(k.value for k in kinds)}")
        if module.kind is ModuleKind.BLOCK:
            template = module.template
            listed = template is not None and module in template.instances
            if template is None or ir.templates.get(template.name) is not template or not listed:
                problems.append(f"block {module.path} is not an instance of a known template")
        if module.kind is ModuleKind.SEQUENCE and module.children:
            problems.append(f"sequence {module.path} holds modules; it numbers ops")


def _node(ir: IR, node: Node, modules: set, paths: set[str], problems: list[str]) -> None:
    op = node.op
    operands = ir.operands(node)
    positions = sorted(ir.graph.get_edge_data(o, node)["pos"] for o in operands)
    if positions != list(range(op.arity)):
        problems.append(f"{node} has operand positions {positions}; {op.kind} takes {op.arity}")
    problems.extend(f"{node}: {problem}" for problem in op.problems())
    if node.parent not in modules:
        problems.append(f"{node} lives in {node.parent}, which is not in the module tree")
    if op.is_module:
        expected = node.parent.prefix()
        if not node.path or not node.path.startswith(expected) or node.path in paths:
            problems.append(f"{node} has module path {node.path!r}; expected a new path under {expected!r}")
        else:
            paths.add(node.path)
        if node.parent.kind is ModuleKind.SEQUENCE and not node.path[len(expected) :].isdigit():  # type: ignore[index]
            problems.append(f"{node} in a sequence is not numbered")
    elif node.path is not None:
        problems.append(f"{node} is functional but has module path {node.path!r}")
    for ref in (node.branch, node.shortcut_of, node.residual.source if node.residual else None):
        if ref is not None and ref not in ir:
            problems.append(f"{node} refers to {ref}, which is not in the graph")
    if (node.residual is not None) != (op.kind == "add"):
        problems.append(f"{node}: only residual adds carry residual information")
    _shape(ir, node, operands, problems)


def _shape(ir: IR, node: Node, operands: list[Node], problems: list[str]) -> None:
    if node.shape is None:
        return
    expected: tuple[int, ...] | None
    if node.op.arity == 0:
        expected = ir.input_shape
    else:
        shapes = [o.shape for o in operands]
        if any(s is None for s in shapes):
            problems.append(f"{node} has a shape but an operand has none")
            return
        errors = Collector()
        expected = node.op.infer(shapes, ShapeReport(errors, node.span, node.label))  # type: ignore[arg-type]
    if tuple(node.shape) != expected:
        problems.append(f"{node} has shape {node.shape}; its shape rule gives {expected}")
