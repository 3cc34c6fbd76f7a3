"""Shape inference, by each op's shape rule (PyTorch's exact conv and pool arithmetic).

Needs: a lowered IR.
Guarantees: every node has `shape` set; every spatial size is at least 1;
conv groups divide their channels; ops get inputs of the rank they need.
All independent shape errors are reported together: a node whose operand
failed is skipped rather than reported again.
"""

from __future__ import annotations

from ..diagnostics import Collector
from ..ir.graph import IR
from ..ir.node import Node
from ..ir.shape import shape_text
from ..limits import Limits
from ..ops.base import ShapeReport

NAME = "shapes"


def apply(ir: IR, limits: Limits | None = None, only: list[Node] | None = None) -> None:
    """Infer every node's shape (or only those of `only`, in that order, whose operands have theirs)."""
    errors = Collector()
    for node in only if only is not None else ir.walk():
        if node.op.arity == 0:
            node.shape = ir.input_shape
            continue
        shapes = [o.shape for o in ir.operands(node)]
        if any(s is None for s in shapes):
            node.shape = None
            continue
        node.shape = infer(node, shapes, errors)  # type: ignore[arg-type]  # none is None here
    errors.raise_if_any()


def infer(node: Node, shapes: list[tuple[int, ...]], errors: Collector):
    """`node`'s output shape by its op's rule, or None after adding the reason to `errors`."""
    op = node.op
    if op.spatial and len(shapes[0]) != 3:
        errors.add(
            "E0207",
            f"`{node.label}` needs a C×H×W input, got the flat {shape_text(shapes[0])}",
            node.span,
            "input is flat",
            "spatial ops come before `flatten`",
        )
        return None
    return op.infer(shapes, ShapeReport(errors, node.span, node.label))
