"""`relu6`: the bounded rectifier min(max(x, 0), 6), elementwise (PyTorch's ReLU6)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from .base import OnnxWriter, Op, Shape, ShapeReport, Signature, TorchWriter


@dataclass(frozen=True)
class ReLU6(Op):
    kind: ClassVar[str] = "relu6"
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
        return "ReLU6"

    def torch_module(self, w: TorchWriter) -> str:
        return "nn.ReLU6(inplace=True)" if w.inplace() else "nn.ReLU6()"

    def torch_call(self, w: TorchWriter, args: list[str]) -> str:
        return f"F.relu6({args[0]})"

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        # Clip takes its bounds as inputs from opset 11 on.
        w.output("Clip", [inputs[0], w.float_constant("min", [0.0], ()), w.float_constant("max", [6.0], ())])
