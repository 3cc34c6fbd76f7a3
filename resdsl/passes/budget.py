"""Refuse networks too large to build or run, before any backend allocates a weight.

Needs: shapes inferred and shortcuts placed (projections own parameters too).
Guarantees: every tensor's channels, spatial sides and element count, and the
network's parameter and MAC counts, are within the `limits`
(resdsl/limits.py).
"""

from __future__ import annotations

import math

from ..ir.cost import macs, params
from ..ir.graph import IR
from ..ir.node import Node
from ..limits import Limits

NAME = "budget"


def apply(ir: IR, limits: Limits) -> None:
    total = work = 0
    walk = ir.walk()
    for node in walk:
        shape = node.shape
        assert shape is not None
        what = f"`{node.label}`"
        if len(shape) == 3:
            limits.check("channels", shape[0], f"the channel count after {what}", node.span)
            limits.check("spatial", max(shape[1:]), f"the largest side after {what}", node.span)
        limits.check("activations", math.prod(shape), f"the number of elements after {what}", node.span)
        if node.op.kind == "conv" and node.op.stride > 1:  # type: ignore[attr-defined]
            _check_strided_conv(ir, node, limits)
        total += params(ir, node)
        work += macs(ir, node)
    # Shown at the network's name (the input node's span): the totals belong to the whole network.
    limits.check("params", total, "the network's parameter count", walk[0].span, "this network")
    limits.check("macs", work, "the network's multiply-accumulates per input", walk[0].span, "this network")


def _check_strided_conv(ir: IR, node: Node, limits: Limits) -> None:
    """A strided conv's backward pass in PyTorch (oneDNN, on the CPU) works over its input at the
    stride's resolution, C × (H_out·s) × (W_out·s) elements: about the input's size for any usual
    stride, but a stride far past the input makes it huge (and past 2**31 elements it crashes)."""
    stride = node.op.stride  # type: ignore[attr-defined]
    source = ir.operands(node)[0].shape
    assert source is not None and node.shape is not None
    _, height, width = node.shape
    covered = source[0] * height * stride * width * stride
    what = f"the elements `{node.label}`'s backward pass covers at stride {stride}"
    limits.check("activations", covered, what, node.span, "stride too large for its input")
