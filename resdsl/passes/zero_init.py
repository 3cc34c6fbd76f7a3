"""Mark the BatchNorms whose γ starts at zero, by the `zero_init_last` policy.

Needs: norms placed and shortcuts settled (a removed add has no branch to mark).
Guarantees: with `zero_init_last = true`, the last BatchNorm on each residual
add's branch has `zero_init` set, so that (BatchNorm β starting at zero) every
residual branch starts at zero (Goyal et al. 2017); no node has it otherwise.
"""

from __future__ import annotations

from ..ir.graph import IR
from ..ir.node import Node
from ..limits import Limits

NAME = "zero_init"


def apply(ir: IR, limits: Limits | None = None) -> None:
    if not ir.policies.zero_init_last:
        return
    last_bn: dict[Node, Node] = {}
    for node in ir.walk():
        if node.op.kind == "batchnorm" and node.branch is not None:
            last_bn[node.branch] = node
    for node in last_bn.values():
        node.zero_init = True
