"""Fold inference-mode BatchNorm into the convolution before it.

Not part of the checking pipeline: a backend asks for it, because it changes
the weights as well as the graph.

Needs: a validated IR and its state (weights.layout keys).
Guarantees: a new IR and state (the inputs are untouched) in which every
BatchNorm whose operand is a conv read by nothing else is gone; that conv has
`bias=True` and computes the same function:
    w' = w · γ/√(var+ε)    b' = β + (b − mean) · γ/√(var+ε)
BatchNorms after anything else (pre-activation networks normalise adds) stay.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..ir.cost import in_shapes
from ..ir.graph import IR
from ..ir.node import Node
from ..ir.verify import verify

NAME = "fold_bn"


def foldable(ir: IR) -> list[tuple[Node, Node]]:
    """(conv, batchnorm) pairs that can be folded, in node order."""
    pairs = []
    for node in ir:
        if node.op.kind != "batchnorm":
            continue
        (source,) = ir.operands(node)
        if source.op.kind == "conv" and ir.graph.out_degree(source) == 1:
            pairs.append((source, node))
    return pairs


def apply(ir: IR, state: dict[str, np.ndarray]) -> tuple[IR, dict[str, np.ndarray]]:
    ir = ir.copy()
    state = dict(state)
    for conv, bn in foldable(ir):
        entries = {entry.name: f"{bn.path}.{entry.name}" for entry in bn.op.state(in_shapes(ir, bn))}
        gamma, beta, mean, var = (
            state[entries[k]].astype(np.float64) for k in ("weight", "bias", "running_mean", "running_var")
        )
        for key in entries.values():
            state.pop(key, None)
        scale = gamma / np.sqrt(var + bn.op.eps)  # type: ignore[attr-defined]  # a BatchNorm
        weight = state[f"{conv.path}.weight"].astype(np.float64)
        bias = state.get(f"{conv.path}.bias", np.zeros_like(mean)).astype(np.float64)
        state[f"{conv.path}.weight"] = (weight * scale[:, None, None, None]).astype(np.float32)
        state[f"{conv.path}.bias"] = (beta + (bias - mean) * scale).astype(np.float32)
        conv.op = replace(conv.op, bias=True)  # type: ignore[call-arg]  # a Conv
        ir.remove_passthrough(bn, conv)
    verify(ir, after=NAME)
    return ir, state
