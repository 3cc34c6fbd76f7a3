"""Fold inference-mode BatchNorm into the convolution before it.

Not part of the checking pipeline: a backend asks for it, because it changes
the weights as well as the graph.

Needs: a validated graph and its state (weights.layout keys).
Guarantees: a new graph and state (the inputs are untouched) in which every
BatchNorm whose operand is a conv read by nothing else is gone; that conv has
`bias=True` and computes the same function:
    w' = w · γ/√(var+ε)    b' = β + (b − mean) · γ/√(var+ε)
BatchNorms after anything else (pre-activation networks normalise adds) stay.
"""

from __future__ import annotations

from dataclasses import replace

import networkx as nx
import numpy as np

from ..ir.graph import operands, remove_passthrough, verify
from ..weights import OPTIONAL_SUFFIX

NAME = "fold_bn"


def foldable(graph: nx.DiGraph) -> list[tuple[int, int]]:
    """(conv, batchnorm) pairs that can be folded, in node order."""
    pairs = []
    for node in sorted(graph):
        if graph.nodes[node]["op"].kind != "batchnorm":
            continue
        (source,) = operands(graph, node)
        if graph.nodes[source]["op"].kind == "conv" and graph.out_degree(source) == 1:
            pairs.append((source, node))
    return pairs


def apply(graph: nx.DiGraph, state: dict[str, np.ndarray]) -> tuple[nx.DiGraph, dict[str, np.ndarray]]:
    graph = graph.copy()
    state = dict(state)
    for conv, bn in foldable(graph):
        conv_data, bn_data = graph.nodes[conv], graph.nodes[bn]
        conv_path, bn_path = conv_data["path"], bn_data["path"]
        gamma, beta, mean, var = (
            state.pop(f"{bn_path}.{k}").astype(np.float64) for k in ("weight", "bias", "running_mean", "running_var")
        )
        state.pop(bn_path + OPTIONAL_SUFFIX, None)
        scale = gamma / np.sqrt(var + bn_data["op"].eps)
        weight = state[f"{conv_path}.weight"].astype(np.float64)
        bias = state.get(f"{conv_path}.bias", np.zeros_like(mean)).astype(np.float64)
        state[f"{conv_path}.weight"] = (weight * scale[:, None, None, None]).astype(np.float32)
        state[f"{conv_path}.bias"] = (beta + (bias - mean) * scale).astype(np.float32)
        conv_data["op"] = replace(conv_data["op"], bias=True)
        remove_passthrough(graph, bn, conv)
    verify(graph, after=NAME)
    return graph, state
