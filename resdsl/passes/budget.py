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
        total += params(ir, node)
        work += macs(ir, node)
    # Shown at the network's name (the input node's span): the totals belong to the whole network.
    limits.check("params", total, "the network's parameter count", walk[0].span, "this network")
    limits.check("macs", work, "the network's multiply-accumulates per input", walk[0].span, "this network")
