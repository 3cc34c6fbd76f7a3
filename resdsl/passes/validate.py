"""Final checks on the fully built IR.

Needs: every other pass done. Guarantees: every node has a shape and every
residual add has operands of equal shape. A failure here is a bug in resdsl
(the earlier passes report user mistakes), so it raises VerifyError, not a
spec error.
"""

from __future__ import annotations

from ..ir.graph import IR, VerifyError
from ..limits import Limits

NAME = "validate"


def apply(ir: IR, limits: Limits | None = None) -> None:
    for node in ir.graph:
        if node.shape is None:
            raise VerifyError(f"{node} has no shape")
        if node.op.kind == "add":
            shapes = {o.shape for o in ir.operands(node)}
            if len(shapes) != 1:
                raise VerifyError(f"{node} has operands of shapes {shapes}")
