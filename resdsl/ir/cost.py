"""Parameters and multiply-accumulates of IR nodes, from their ops' state layouts and MAC rules.

MACs follow torchvision's published figures: convolutions and linear layers
only (one MAC per weight per output position), squeeze-and-excitation
counted as its two 1×1 convs; BatchNorm, activations, pooling, adds and the
SE gate's multiply are not counted.
"""

from __future__ import annotations

from functools import lru_cache

from ..ops.base import Op
from .graph import IR
from .node import Node
from .shape import Shape


def in_shapes(ir: IR, node: Node) -> list[Shape]:
    return [operand.shape for operand in ir.operands(node)]  # type: ignore[misc]  # shapes are inferred


def params(ir: IR, node: Node) -> int:
    """Trainable parameters (BatchNorm buffers excluded), as `sum(p.numel())` counts them."""
    if not node.op.is_module:
        return 0
    return _parameters(node.op, tuple(in_shapes(ir, node)))


@lru_cache(maxsize=4096)
def _parameters(op: Op, shapes: tuple[Shape, ...]) -> int:
    """The parameter count of an op on operands of `shapes` (ops are immutable: a network repeats a few)."""
    return sum(entry.size for entry in op.state(shapes) if entry.parameter)


def macs(ir: IR, node: Node) -> int:
    assert node.shape is not None
    return node.op.macs(in_shapes(ir, node), node.shape)


def totals(ir: IR) -> tuple[int, int]:
    """The network's parameters and MACs."""
    nodes = list(ir.graph)
    return sum(params(ir, n) for n in nodes), sum(macs(ir, n) for n in nodes)


def depth(ir: IR) -> int:
    """The paper's depth: convs and linear layers the spec wrote (projections and SE excluded)."""
    from .node import Origin

    return sum(1 for n in ir.graph if ("conv" in n.op.families or n.op.kind == "linear") and n.origin is Origin.SPEC)
