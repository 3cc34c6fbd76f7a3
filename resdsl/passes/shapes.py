"""Shape inference with PyTorch's exact conv and pool arithmetic.

Needs: a graph whose input node's shape is the network's input shape.
Guarantees: every node has `shape` set; every spatial size is at least 1;
conv groups divide their channels; ops get inputs of the rank they need.
All independent shape errors are reported together: a node whose operand
failed is skipped rather than reported again.
"""

from __future__ import annotations

import math

import networkx as nx

from ..diagnostics import Collector
from ..ir.graph import operands, order, shape_text

NAME = "shapes"


def conv_out(size: int, kernel: int, stride: int, padding: int, dilation: int = 1, ceil_mode: bool = False) -> int:
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if ceil_mode:
        out = math.ceil(span / stride) + 1
        # PyTorch: the last window must start inside the input or its left padding.
        if (out - 1) * stride >= size + padding:
            out -= 1
        return out
    return span // stride + 1


def apply(graph: nx.DiGraph, only: list[int] | None = None) -> None:
    errors = Collector()
    for node in only if only is not None else order(graph):
        data = graph.nodes[node]
        op = data["op"]
        if op.kind == "input":
            data["shape"] = tuple(graph.graph["input_shape"])
            continue
        shapes = [graph.nodes[o]["shape"] for o in operands(graph, node)]
        if any(s is None for s in shapes):
            data["shape"] = None
            continue
        data["shape"] = _infer(op, shapes, data, errors)
    errors.raise_if_any()


def _infer(op, shapes, data, errors: Collector):
    shape = shapes[0]
    span = data["span"]
    label = data["path"] or op.kind
    spatial_ops = ("conv", "maxpool", "avgpool", "batchnorm", "gap", "pad_shortcut", "se")
    if op.kind in spatial_ops and len(shape) != 3:
        errors.add(
            "E0207",
            f"`{label}` needs a C×H×W input, got the flat {shape_text(shape)}",
            span,
            "input is flat",
            "spatial ops come before `flatten`",
        )
        return None
    if op.kind == "conv":
        channels = shape[0]
        if channels % op.groups or op.out_channels % op.groups:
            errors.add(
                "E0204",
                f"`{label}`: groups={op.groups} must divide both {channels} input and "
                f"{op.out_channels} output channels",
                span,
                "groups do not divide the channels",
            )
            return None
        return _window(op, shape, op.out_channels, op.dilation, False, data, errors)
    if op.kind in ("maxpool", "avgpool"):
        if op.padding * 2 > op.kernel:
            errors.add(
                "E0208",
                f"`{label}`: padding {op.padding} is more than half the kernel {op.kernel}",
                span,
                "too much padding",
                "pools may pad at most kernel // 2",
            )
            return None
        return _window(op, shape, shape[0], 1, op.ceil_mode, data, errors)
    if op.kind == "gap":
        return (shape[0], 1, 1)
    if op.kind == "flatten":
        return (math.prod(shape),)
    if op.kind == "linear":
        if len(shape) != 1:
            errors.add(
                "E0207",
                f"`{label}` needs a flat input, got {shape_text(shape)}",
                span,
                "input is not flat",
                "put `flatten` (after `gap`) before the linear layer",
            )
            return None
        return (op.out_features,)
    if op.kind == "pad_shortcut":
        c, h, w = shape
        return (c + op.pad_before + op.pad_after, conv_out(h, 1, op.stride, 0), conv_out(w, 1, op.stride, 0))
    # add, batchnorm, relu, dropout, se keep the main operand's shape
    return shape


def _window(op, shape, out_channels, dilation, ceil_mode, data, errors: Collector):
    _, h, w = shape
    label = data["path"] or op.kind
    reach = dilation * (op.kernel - 1) + 1
    # PyTorch's windows never yield a zero size: they refuse a window that does not fit.
    if reach > min(h, w) + 2 * op.padding:
        what = f"{op.kernel}×{op.kernel} kernel" + (f" (dilation {dilation})" if dilation > 1 else "")
        errors.add(
            "E0201",
            f"`{label}`: the spatial size shrinks to zero: a {what} does not fit the "
            f"{h}×{w} input padded by {op.padding}",
            data["span"],
            f"input is {h}×{w} here",
            "use a larger input, fewer stride-2 steps or a smaller kernel",
        )
        return None
    oh = conv_out(h, op.kernel, op.stride, op.padding, dilation, ceil_mode)
    ow = conv_out(w, op.kernel, op.stride, op.padding, dilation, ceil_mode)
    return (out_channels, oh, ow)
