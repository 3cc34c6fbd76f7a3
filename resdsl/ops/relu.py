"""`relu`: the rectifier, max(x, 0)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from .base import OnnxWriter, Op, Shape, ShapeReport, Signature, TorchWriter


@dataclass(frozen=True)
class ReLU(Op):
    kind: ClassVar[str] = "relu"
    layout: ClassVar[str] = "any"  # elementwise: either memory layout
    signature: ClassVar[Signature | None] = Signature(())
    is_module: ClassVar[bool] = True
    families: ClassVar[tuple[str, ...]] = ("act",)
    saves_output: ClassVar[bool] = True  # its backward reads the result

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        return inputs[0]

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return 0

    def label(self, channels: bool = True) -> str:
        return "ReLU"

    def torch_module(self, w: TorchWriter) -> str:
        return "nn.ReLU(inplace=True)" if w.inplace() else "nn.ReLU()"

    def torch_call(self, w: TorchWriter, args: list[str]) -> str:
        return f"torch.relu({args[0]})"

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        w.output("Relu", inputs)
