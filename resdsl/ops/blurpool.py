"""`blurpool`: anti-aliased downsampling (Zhang 2019), as timm's BlurPool2d.

Reflect padding, then a fixed depthwise filter (the outer product of binomial
coefficients, normalised to sum 1) with the stride. The filter is a
non-persistent buffer in timm, so it is no state here either: it is the same
for every network and never trained. At stride 1 it is the identity, as timm's
ResNet blurs only where a layer strides (`nn.Identity` elsewhere): a block's
`aa = blurpool(s=stride)` is then timm's `aa` in every block.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from .base import ArgSpec, OnnxWriter, Op, Shape, ShapeReport, Signature, TorchWriter
from .window import conv_out

CLASS = "BlurPool2d"

# What the generated file defines when a network uses `blurpool`: the module and its functional form. The
# functions are private so that no spec name (never `_`-prefixed) can shadow them in a generated forward.
SOURCE = f'''\
def _blur_filter(channels: int, filt_size: int = 3) -> torch.Tensor:
    """timm's BlurPool2d filter: binomial coefficients (outer product, sum 1), one copy per channel."""
    coeffs = torch.ones(1)
    for _ in range(filt_size - 1):  # the next row of Pascal's triangle
        coeffs = F.pad(coeffs, [1, 0]) + F.pad(coeffs, [0, 1])
    coeffs = coeffs / coeffs.sum()
    return (coeffs[:, None] * coeffs[None, :]).repeat(channels, 1, 1, 1)


def _blur_pool2d(x: torch.Tensor, filt_size: int = 3, stride: int = 2, filt: torch.Tensor | None = None):
    """Anti-aliased downsampling (Zhang 2019) as timm's BlurPool2d: reflect padding, blur, stride."""
    if filt is None:
        filt = _blur_filter(x.shape[1], filt_size).to(x)
    pad = (stride - 1 + filt_size - 1) // 2
    return F.conv2d(F.pad(x, [pad, pad, pad, pad], mode="reflect"), filt, stride=stride, groups=x.shape[1])


class {CLASS}(nn.Module):
    """Blur pooling, laid out as timm's BlurPool2d: the filter is a buffer outside the state_dict."""

    def __init__(self, channels, filt_size=3, stride=2):
        super().__init__()
        self.filt_size = filt_size
        self.stride = stride
        self.register_buffer("filt", _blur_filter(channels, filt_size), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _blur_pool2d(x, self.filt_size, self.stride, self.filt)'''


def blur_coefficients(filt: int) -> list[float]:
    """One row of the filter: the binomial coefficients C(filt - 1, k) over their sum 2^(filt - 1)."""
    return [math.comb(filt - 1, k) / 2 ** (filt - 1) for k in range(filt)]


@dataclass(frozen=True)
class BlurPool(Op):
    kind: ClassVar[str] = "blurpool"
    spatial: ClassVar[bool] = True
    is_module: ClassVar[bool] = True  # a module without state, as timm's `aa` layers
    families: ClassVar[tuple[str, ...]] = ("aa",)  # timm's aa_layer=BlurPool2d (`policy aa = blurpool`)
    saves_output: ClassVar[bool] = True  # at stride 1 its output is its input, which the op before may need
    signature: ClassVar[Signature | None] = Signature(
        (ArgSpec("stride", int, 2, aliases=("s",)), ArgSpec("filt", int, 3, aliases=("filt_size",), minimum=2))
    )

    stride: int = 2
    filt: int = 3

    @property
    def padding(self) -> int:
        """timm's get_padding(filt, stride): reflected on every side."""
        return (self.stride - 1 + self.filt - 1) // 2

    def problems(self) -> list[str]:
        problems = super().problems()
        return problems + [
            f"{name}={value} is below {low}"
            for name, value, low in (("filt", self.filt, 2), ("stride", self.stride, 1))
            if value < low
        ]

    def downsampling(self) -> int:
        return self.stride

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        c, h, w = inputs[0]
        if self.stride == 1:
            return inputs[0]
        if self.padding >= min(h, w):
            report.error(
                "E0201",
                f"`{report.name}`: a {self.filt}×{self.filt} blur pool reflects {self.padding} rows and columns, "
                f"which needs an input larger than {h}×{w}",
                f"input is {h}×{w} here",
                "reflect padding must be smaller than the input: use a larger input or fewer stride-2 steps",
            )
            return None
        return (c, *(conv_out(size, self.filt, self.stride, self.padding) for size in (h, w)))

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        c, h, w = output  # a depthwise convolution, where it strides
        return c * h * w * self.filt * self.filt if self.stride > 1 else 0

    def label(self, channels: bool = True) -> str:
        if self.stride == 1:
            return "identity (blur-pool at stride 1)"
        return f"{self.filt}×{self.filt} blur-pool, stride {self.stride}"

    def _form(self, stride: str, filt: str, callee: str, first: str, identity: str) -> str:
        """`callee(first, ...)` where the op strides, `identity` where it does not (a symbolic stride: both)."""
        extra = ([f"filt_size={filt}"] if filt != "3" else []) + ([f"stride={stride}"] if stride != "2" else [])
        blurred = f"{callee}({', '.join([first, *extra])})"
        if stride == "1":
            return identity
        return blurred if stride.isdigit() else f"{blurred} if {stride} > 1 else {identity}"

    def torch_module(self, w: TorchWriter) -> str:
        return self._form(w.attr("stride"), w.attr("filt"), CLASS, w.in_channels(), "nn.Identity()")

    def torch_call(self, w: TorchWriter, args: list[str]) -> str:
        stride = w.stored("stride")
        filt = w.stored("filt") if w.attr("filt") != "3" else "3"
        return self._form(stride, filt, "_blur_pool2d", args[0], args[0])

    def torch_helpers(self) -> Mapping[str, str]:
        return {CLASS: SOURCE}

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        """Pad (reflect), then a depthwise Conv whose weight is a constant: the filter is no initializer."""
        if self.stride == 1:
            w.output("Identity", inputs)
            return
        c, h, width = w.inputs[0]
        p, k = self.padding, self.filt
        pads = w.constant("pads", [0, 0, p, p, 0, 0, p, p])
        padded = w.step("padded", "Pad", [inputs[0], pads], (c, h + 2 * p, width + 2 * p), mode="reflect")
        row = blur_coefficients(k)
        kernel = [a * b for a in row for b in row] * c
        filt = w.float_constant("filter", kernel, (c, 1, k, k))
        w.output("Conv", [padded, filt], kernel_shape=[k, k], strides=[self.stride] * 2, group=c)
