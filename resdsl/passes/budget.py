"""Refuse networks too large to build, before any backend allocates a weight.

Needs: shapes inferred and shortcuts placed (projections own parameters too).
Guarantees: every tensor's channels and spatial sides, and the network's
parameter count, are within the `limits` (resdsl/limits.py).
"""

from __future__ import annotations

from ..ir.cost import params
from ..ir.graph import IR
from ..limits import Limits

NAME = "budget"


def apply(ir: IR, limits: Limits) -> None:
    total = 0
    walk = ir.walk()
    for node in walk:
        shape = node.shape
        assert shape is not None
        if len(shape) == 3:
            what = f"`{node.label}`"
            limits.check("channels", shape[0], f"the channel count after {what}", node.span)
            limits.check("spatial", max(shape[1:]), f"the largest side after {what}", node.span)
        total += params(ir, node)
    # Shown at the network's name (the input node's span): the total belongs to the whole network.
    limits.check("params", total, "the network's parameter count", walk[0].span, "this network")
