"""`conv`: 2-D convolution, PyTorch's nn.Conv2d."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ..diagnostics import Span
from ..ir.expr import Expr
from .base import (
    ArgSpec,
    OnnxWriter,
    Op,
    Shape,
    ShapeReport,
    Signature,
    StateEntry,
    TorchWriter,
    changed_args,
    fan_in_bound,
    half_kernel,
)
from .window import window_out


@dataclass(frozen=True)
class Conv(Op):
    kind: ClassVar[str] = "conv"
    is_module: ClassVar[bool] = True
    families: ClassVar[tuple[str, ...]] = ("conv",)  # `policy conv_op`: conv, std_conv
    spatial: ClassVar[bool] = True
    signature: ClassVar[Signature | None] = Signature(
        (
            ArgSpec("out_channels", int, aliases=("out",), bound="channels"),
            ArgSpec("kernel", int, aliases=("k",), bound="spatial"),
            ArgSpec("stride", int, 1, aliases=("s",), bound="spatial"),
            ArgSpec("padding", int, None, aliases=("p",), minimum=0, bound="spatial"),
            ArgSpec("groups", int, 1, bound="channels"),
            ArgSpec("dilation", int, 1, aliases=("d",), bound="spatial"),
            ArgSpec("bias", bool, False),
            # Whether the norm policy places BatchNorm/ReLU around it; `post`: conv → BN → ReLU under any policy.
            ArgSpec("norm", bool, True, words=("post",)),
        ),
        node_args=("norm",),
    )

    out_channels: int
    kernel: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    dilation: int = 1
    bias: bool = False

    def downsampling(self) -> int:
        return self.stride

    @classmethod
    def complete(cls, values: dict[str, Any], exprs: dict[str, Expr], span: Span) -> None:
        if values["padding"] is None:
            values["padding"] = values["kernel"] // 2 * values["dilation"]
            symbolic = half_kernel(values, exprs, span)
            if symbolic is not None:
                exprs["padding"] = symbolic

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        channels = inputs[0][0]
        if channels % self.groups or self.out_channels % self.groups:
            report.error(
                "E0204",
                f"`{report.name}`: groups={self.groups} must divide both {channels} input and "
                f"{self.out_channels} output channels",
                "groups do not divide the channels",
            )
            return None
        return window_out(self, inputs[0], self.out_channels, self.dilation, False, report)

    def _weight_shape(self, inputs: Sequence[Shape]) -> Shape:
        return (self.out_channels, inputs[0][0] // self.groups, self.kernel, self.kernel)

    def state(self, inputs: Sequence[Shape]) -> list[StateEntry]:
        weight = self._weight_shape(inputs)
        bound = fan_in_bound(weight)
        entries = [StateEntry("weight", weight, bound=bound)]
        if self.bias:
            entries.append(StateEntry("bias", (self.out_channels,), bound=bound))
        return entries

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        _, h, w = output
        return self.out_channels * h * w * (inputs[0][0] // self.groups) * self.kernel * self.kernel

    def label(self, channels: bool = True) -> str:
        parts = [f"{self.kernel}×{self.kernel} conv"] + [str(self.out_channels)] * channels
        parts += [f"stride {self.stride}"] * (self.stride > 1)
        parts += [f"groups {self.groups}"] * (self.groups > 1)
        parts += [f"dilation {self.dilation}"] * (self.dilation > 1)
        return ", ".join(parts)

    def torch_module(self, w: TorchWriter) -> str:
        args = [w.in_channels(), w.attr("out_channels"), w.attr("kernel")]
        args += changed_args(
            w, (("stride", "1"), ("padding", "0"), ("dilation", "1"), ("groups", "1"), ("bias", "True"))
        )
        return f"nn.Conv2d({', '.join(args)})"

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        params = [w.weight("weight")] + ([w.weight("bias")] if self.bias else [])
        w.output(
            "Conv",
            inputs + params,
            kernel_shape=[self.kernel] * 2,
            strides=[self.stride] * 2,
            pads=[self.padding] * 4,
            dilations=[self.dilation] * 2,
            group=self.groups,
        )
