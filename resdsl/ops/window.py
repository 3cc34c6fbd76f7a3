"""PyTorch's sliding-window arithmetic, shared by the convolution and pooling ops."""

from __future__ import annotations

import math
from typing import Any

from .base import Shape, ShapeReport


def conv_out(size: int, kernel: int, stride: int, padding: int, dilation: int = 1, ceil_mode: bool = False) -> int:
    """The output length of a window sliding over `size`, exactly as PyTorch computes it."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if ceil_mode:
        out = math.ceil(span / stride) + 1
        # PyTorch: the last window must start inside the input or its left padding.
        if (out - 1) * stride >= size + padding:
            out -= 1
        return out
    return span // stride + 1


def window_out(op: Any, shape: Shape, out_channels: int, dilation: int, ceil_mode: bool, report: ShapeReport):
    """The output shape of a windowed op (`kernel`, `stride`, `padding` attributes) on a C×H×W input."""
    _, h, w = shape
    reach = dilation * (op.kernel - 1) + 1
    # PyTorch's windows never yield a zero size: they refuse a window that does not fit.
    if reach > min(h, w) + 2 * op.padding:
        what = f"{op.kernel}×{op.kernel} kernel" + (f" (dilation {dilation})" if dilation > 1 else "")
        report.error(
            "E0201",
            f"`{report.name}`: the spatial size shrinks to zero: a {what} does not fit the "
            f"{h}×{w} input padded by {op.padding}",
            f"input is {h}×{w} here",
            "use a larger input, fewer stride-2 steps or a smaller kernel",
        )
        return None
    oh = conv_out(h, op.kernel, op.stride, op.padding, dilation, ceil_mode)
    ow = conv_out(w, op.kernel, op.stride, op.padding, dilation, ceil_mode)
    return (out_channels, oh, ow)


def pool_pads(kernel: int, stride: int, padding: int, source: Shape, output: Shape) -> tuple[list[int], int]:
    """Explicit ONNX pads, [top, left, bottom, right], that give PyTorch's output size without ceil_mode.

    ONNX's ceil_mode keeps a last window that starts in the right padding,
    which PyTorch drops (shape inference then disagrees with the IR); extra end
    padding, ignored by MaxPool and by AveragePool without count_include_pad,
    reproduces PyTorch exactly. Returns the pads and the extra amount.
    """
    _, h, w = source
    _, out_h, out_w = output
    extra_h, extra_w = (
        max(0, (out - 1) * stride + kernel - (size + 2 * padding)) for out, size in ((out_h, h), (out_w, w))
    )
    return [padding, padding, padding + extra_h, padding + extra_w], extra_h + extra_w
