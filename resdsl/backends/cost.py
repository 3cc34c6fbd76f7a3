"""Parameter and multiply-accumulate counts per IR node.

MACs follow torchvision's published figures: convolutions and linear layers
only (one MAC per weight per output position), squeeze-and-excitation
counted as its two 1×1 convs; BatchNorm, activations, pooling, adds and the
SE gate's multiply are not counted.
"""

from __future__ import annotations

import math

import networkx as nx

from ..ir.graph import operands
from ..ir.ops import se_channels


def in_shape(graph: nx.DiGraph, node: int) -> tuple:
    preds = operands(graph, node)
    return graph.nodes[preds[0]]["shape"] if preds else graph.nodes[node]["shape"]


def params(graph: nx.DiGraph, node: int) -> int:
    """Trainable parameters (BatchNorm buffers excluded), as `sum(p.numel())` counts them."""
    op = graph.nodes[node]["op"]
    if op.kind == "conv":
        weights = op.out_channels * (in_shape(graph, node)[0] // op.groups) * op.kernel * op.kernel
        return weights + (op.out_channels if op.bias else 0)
    if op.kind == "batchnorm":
        return 2 * graph.nodes[node]["shape"][0]
    if op.kind == "linear":
        return op.out_features * in_shape(graph, node)[0] + (op.out_features if op.bias else 0)
    if op.kind == "se":
        channels = in_shape(graph, node)[0]
        squeezed = se_channels(channels, op.reduction, op.divisor)
        return 2 * channels * squeezed + squeezed + channels
    return 0


def macs(graph: nx.DiGraph, node: int) -> int:
    op = graph.nodes[node]["op"]
    shape = graph.nodes[node]["shape"]
    if op.kind == "conv":
        return math.prod(shape) * (in_shape(graph, node)[0] // op.groups) * op.kernel * op.kernel
    if op.kind == "linear":
        return op.out_features * in_shape(graph, node)[0]
    if op.kind == "se":  # its two 1×1 convs, on the pooled 1×1 map
        channels = in_shape(graph, node)[0]
        return 2 * channels * se_channels(channels, op.reduction, op.divisor)
    return 0


def totals(graph: nx.DiGraph) -> tuple[int, int]:
    return sum(params(graph, n) for n in graph), sum(macs(graph, n) for n in graph)


def depth(graph: nx.DiGraph) -> int:
    """The paper's depth: convs and linear layers the spec wrote (projections and SE excluded)."""
    return sum(
        1 for n in graph if graph.nodes[n]["op"].kind in ("conv", "linear") and graph.nodes[n]["origin"] == "spec"
    )
