"""`silu`: the sigmoid-weighted linear unit x·sigmoid(x) (also called swish), elementwise."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from .base import OnnxWriter, Op, Shape, ShapeReport, Signature, TorchWriter


@dataclass(frozen=True)
class SiLU(Op):
    kind: ClassVar[str] = "silu"
    layout: ClassVar[str] = "any"  # elementwise: either memory layout
    signature: ClassVar[Signature | None] = Signature(())
    is_module: ClassVar[bool] = True
    families: ClassVar[tuple[str, ...]] = ("act",)
    saves_output: ClassVar[bool] = False  # autograd keeps its input (in place too), so its output may be overwritten

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        return inputs[0]

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return 0

    def label(self, channels: bool = True) -> str:
        return "SiLU"

    def torch_module(self, w: TorchWriter) -> str:
        return "nn.SiLU(inplace=True)" if w.inplace() else "nn.SiLU()"

    def torch_call(self, w: TorchWriter, args: list[str]) -> str:
        return f"F.silu({args[0]})"

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        # ONNX has no SiLU (Swish) operator up to opset 21.
        gate = w.step("gate", "Sigmoid", inputs, w.shape)
        w.output("Mul", [inputs[0], gate])
