"""`conv_transpose`: 2-D transposed convolution, PyTorch's nn.ConvTranspose2d (learned upsampling)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from .base import (
    ArgSpec,
    OnnxWriter,
    Op,
    Range,
    Shape,
    ShapeReport,
    Signature,
    StateEntry,
    TorchWriter,
    changed_args,
    fan_in_bound,
)

MAX_STRIDE = 2**14 - 1  # the largest stride PyTorch's CPU kernel runs (see the signature)


@dataclass(frozen=True)
class ConvTranspose(Op):
    kind: ClassVar[str] = "conv_transpose"
    is_module: ClassVar[bool] = True
    spatial: ClassVar[bool] = True
    signature: ClassVar[Signature | None] = Signature(
        (
            ArgSpec("out_channels", int, aliases=("out",), bound="channels"),
            ArgSpec("kernel", int, aliases=("k",), bound="spatial"),
            # PyTorch's CPU ConvTranspose2d crashes the process (a segmentation fault) from a stride of 2**14
            # on, for batches of two or more, whatever the sizes: refused before anything runs.
            ArgSpec("stride", int, 1, aliases=("s",), bound="spatial", range=Range(1, MAX_STRIDE)),
            ArgSpec("padding", int, 0, aliases=("p",), minimum=0, bound="spatial"),
            ArgSpec("output_padding", int, 0, aliases=("op",), minimum=0, bound="spatial"),
            ArgSpec("groups", int, 1, bound="channels"),
            ArgSpec("dilation", int, 1, aliases=("d",), bound="spatial"),
            ArgSpec("bias", bool, False),
        )
    )

    out_channels: int
    kernel: int
    stride: int = 1
    padding: int = 0
    output_padding: int = 0
    groups: int = 1
    dilation: int = 1
    bias: bool = False

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        channels, h, w = inputs[0]
        if channels % self.groups or self.out_channels % self.groups:
            report.error(
                "E0204",
                f"`{report.name}`: groups={self.groups} must divide both {channels} input and "
                f"{self.out_channels} output channels",
                "groups do not divide the channels",
            )
            return None
        if self.output_padding >= max(self.stride, self.dilation):
            report.error(
                "E0108",
                f"`{report.name}`: output_padding {self.output_padding} must be smaller than the stride "
                f"{self.stride} or the dilation {self.dilation}",
                "out of range",
                "output_padding only picks among the sizes a stride can give; use 0 or stride - 1",
            )
            return None
        sides = [
            (size - 1) * self.stride - 2 * self.padding + self.dilation * (self.kernel - 1) + self.output_padding + 1
            for size in (h, w)
        ]
        if min(sides) < 1:
            report.error(
                "E0201",
                f"`{report.name}`: the spatial size shrinks to zero: padding {self.padding} takes more than a "
                f"{h}×{w} input gives",
                f"input is {h}×{w} here",
                "use less padding",
            )
            return None
        return (self.out_channels, sides[0], sides[1])

    def _weight_shape(self, inputs: Sequence[Shape]) -> Shape:
        return (inputs[0][0], self.out_channels // self.groups, self.kernel, self.kernel)

    def state(self, inputs: Sequence[Shape]) -> list[StateEntry]:
        weight = self._weight_shape(inputs)
        bound = fan_in_bound(weight)  # PyTorch's fan-in of a transposed weight is dim 1 · k · k, as here
        entries = [StateEntry("weight", weight, bound=bound)]
        if self.bias:
            entries.append(StateEntry("bias", (self.out_channels,), bound=bound))
        return entries

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        # Every input position scatters its k·k·(out/groups) products per input channel.
        channels, h, w = inputs[0]
        return channels * h * w * (self.out_channels // self.groups) * self.kernel * self.kernel

    def label(self, channels: bool = True) -> str:
        parts = [f"{self.kernel}×{self.kernel} transposed conv"] + [str(self.out_channels)] * channels
        parts += [f"stride {self.stride}"] * (self.stride > 1)
        parts += [f"groups {self.groups}"] * (self.groups > 1)
        return ", ".join(parts)

    def torch_module(self, w: TorchWriter) -> str:
        args = [w.in_channels(), w.attr("out_channels"), w.attr("kernel")]
        defaults = (("stride", "1"), ("padding", "0"), ("output_padding", "0"), ("groups", "1"), ("bias", "True"))
        args += changed_args(w, (*defaults, ("dilation", "1")))  # PyTorch's order: dilation after bias
        return f"nn.ConvTranspose2d({', '.join(args)})"

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        params = [w.weight("weight")] + ([w.weight("bias")] if self.bias else [])
        w.output(
            "ConvTranspose",
            inputs + params,
            kernel_shape=[self.kernel] * 2,
            strides=[self.stride] * 2,
            pads=[self.padding] * 4,
            output_padding=[self.output_padding] * 2,
            dilations=[self.dilation] * 2,
            group=self.groups,
        )
