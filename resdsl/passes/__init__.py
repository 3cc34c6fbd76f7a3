"""The pass pipeline: each pass transforms the IR, and the IR is verified after each.

The contract of a pass: a module with a `NAME` and `apply(ir, limits)`, whose
docstring says what it needs and what it guarantees; it reports every mistake
in the spec it finds as one ResdslError, and leaves the IR valid (ir/verify.py).
"""

from __future__ import annotations

from ..ir.graph import IR
from ..ir.verify import Verifier
from ..limits import Limits
from . import attach, budget, norm, projections, shapes, templates, validate, zero_init

PIPELINE = (norm, attach, shapes, projections, zero_init, budget, templates, validate)


def run(ir: IR, limits: Limits | None = None) -> IR:
    limits = limits or Limits()
    verify = Verifier()
    verify(ir, after="lowering")
    for step in PIPELINE:
        step.apply(ir, limits)
        verify(ir, after=step.NAME)
    return ir
