"""Warnings: a valid network that is probably not what its author meant.

Needs: the IR after every pass. Changes nothing; returns W-coded
diagnostics for `compile` to attach to its result.

W0001: under `norm = pre`, convs outside the residual blocks (the stem) get
no BatchNorm or ReLU of their own, since each block normalises its input.
Two such convs in a row are then one linear map: a deep stem (ResNet-C)
collapses. A conv's `norm=post` gives it conv → BN → ReLU whatever the
policy; `norm=false` says the linear chain is meant.
"""

from __future__ import annotations

from ..diagnostics import Diagnostic, Label
from ..ir.graph import IR
from ..ir.node import Node


def check(ir: IR) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    if ir.policies.norm != "pre":
        return found
    for node in ir.walk():
        if not _bare_conv(node):
            continue
        after = ir.users(node)
        if len(after) == 1 and _bare_conv(after[0]):
            second = after[0]
            found.append(
                Diagnostic(
                    "W0001",
                    f"`{node.name or node.path}` and `{second.name or second.path}` are convolutions in a "
                    "row with no BatchNorm or ReLU between them: together they are one linear map",
                    node.span,
                    "no norm or activation after this conv",
                    "under `norm = pre` only the blocks normalise; write `norm=post` on this conv for "
                    "conv → BN → ReLU, or `norm=false` if a linear chain is meant",
                    notes=[Label(second.span, "the next conv")] if second.span else [],
                    severity="warning",
                )
            )
    return found


def _bare_conv(node: Node) -> bool:
    """A conv outside any block left without norm by the policy (not by its own `norm=false`)."""
    return "conv" in node.op.families and node.block is None and node.norm is True
