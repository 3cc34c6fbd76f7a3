"""`linear`: a fully connected layer on a flat input, PyTorch's nn.Linear."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from ..ir.shape import shape_text
from .base import ArgSpec, OnnxWriter, Op, Shape, ShapeReport, Signature, StateEntry, TorchWriter, fan_in_bound


@dataclass(frozen=True)
class Linear(Op):
    kind: ClassVar[str] = "linear"
    is_module: ClassVar[bool] = True
    signature: ClassVar[Signature | None] = Signature(
        (ArgSpec("out_features", int, aliases=("out",), bound="channels"), ArgSpec("bias", bool, True))
    )

    out_features: int
    bias: bool = True

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        if len(inputs[0]) != 1:
            report.error(
                "E0207",
                f"`{report.name}` needs a flat input, got {shape_text(inputs[0])}",
                "input is not flat",
                "put `flatten` (after `gap`) before the linear layer",
            )
            return None
        return (self.out_features,)

    def state(self, inputs: Sequence[Shape]) -> list[StateEntry]:
        weight = (self.out_features, inputs[0][0])
        bound = fan_in_bound(weight)
        entries = [StateEntry("weight", weight, bound=bound)]
        if self.bias:
            entries.append(StateEntry("bias", (self.out_features,), bound=bound))
        return entries

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return self.out_features * inputs[0][0]

    def label(self, channels: bool = True) -> str:
        return f"linear, {self.out_features}"

    def torch_module(self, w: TorchWriter) -> str:
        bias = "" if w.attr("bias") == "True" else f", bias={w.attr('bias')}"
        return f"nn.Linear({w.in_channels()}, {w.attr('out_features')}{bias})"

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        params = [w.weight("weight")] + ([w.weight("bias")] if self.bias else [])
        w.output("Gemm", inputs + params, transB=1)
