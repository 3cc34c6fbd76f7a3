"""Fold inference-mode BatchNorm into the convolution before it.

Not part of the checking pipeline: a backend asks for it, because it changes
the weights as well as the graph.

Needs: a validated IR and its state (weights.layout keys).
Guarantees: a new IR and state (the inputs are untouched; the state is a
weights.Lazy that folds each conv's weights when they are looked up, so a
model streams through a file one array at a time) in which every
BatchNorm whose operand is a conv read by nothing else is gone; that conv has
`bias=True` and computes the same function:
    w' = w · γ/√(var+ε)    b' = β + (b − mean) · γ/√(var+ε)
(the scale and the bias in float64, the weights' products in float32).
BatchNorms after anything else (pre-activation networks normalise adds) stay.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from ..ir.cost import in_shapes
from ..ir.graph import IR
from ..ir.node import Node
from ..ir.verify import verify
from ..weights import Lazy, shapes_of

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


def apply(ir: IR, state: Mapping[str, np.ndarray]) -> tuple[IR, Lazy]:
    """The folded IR and its state; the state is Lazy: each folded conv's arrays are computed when looked up."""
    ir = ir.copy()
    shapes = shapes_of(state)
    folds: dict[str, tuple[dict[str, str], float]] = {}  # conv path -> its BatchNorm's state keys and epsilon
    folded: dict[Node, Node] = {}  # BatchNorm -> the conv it went into
    for conv, bn in foldable(ir):
        keys = {entry.name: f"{bn.path}.{entry.name}" for entry in bn.op.state(in_shapes(ir, bn))}
        for key in keys.values():
            shapes.pop(key, None)
        weight_shape = shapes[f"{conv.path}.weight"][0]
        shapes[f"{conv.path}.weight"] = (weight_shape, "float32")
        shapes[f"{conv.path}.bias"] = ((weight_shape[0],), "float32")
        folds[str(conv.path)] = (keys, bn.op.eps)  # type: ignore[attr-defined]  # a BatchNorm
        conv.op = replace(conv.op, bias=True)  # type: ignore[call-arg]  # a Conv
        ir.remove_passthrough(bn, conv)
        folded[bn] = conv
    for node in ir:  # an add that names the BatchNorm's output (`add c`) now names the conv's, the same tensor
        if node.residual is not None and node.residual.source in folded:
            node.residual.source = folded[node.residual.source]
    verify(ir, after=NAME)

    def fetch(key: str) -> np.ndarray:
        path, _, name = key.rpartition(".")
        if path not in folds or name not in ("weight", "bias"):
            return state[key]
        keys, eps = folds[path]
        own = state[key] if key in state else None  # read first: errors name the conv's key
        gamma, beta, mean, var = (
            state[keys[k]].astype(np.float64) for k in ("weight", "bias", "running_mean", "running_var")
        )
        scale = gamma / np.sqrt(var + eps)
        if name == "weight":  # one float32 product per element: an ulp or two from the float64 one, and cheaper
            assert own is not None
            return np.multiply(own, scale.astype(np.float32).reshape(-1, *[1] * (own.ndim - 1)), dtype=np.float32)
        bias = 0.0 if own is None else own.astype(np.float64)
        return (beta + (bias - mean) * scale).astype(np.float32)

    return ir, Lazy(shapes, fetch)
