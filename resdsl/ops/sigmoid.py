"""`sigmoid`: the logistic function 1 / (1 + e^-x), elementwise (attention gates use it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from .base import OnnxWriter, Op, Shape, ShapeReport, Signature, TorchWriter


@dataclass(frozen=True)
class Sigmoid(Op):
    kind: ClassVar[str] = "sigmoid"
    layout: ClassVar[str] = "any"  # elementwise: either memory layout
    signature: ClassVar[Signature | None] = Signature(())  # `sigmoid`, no arguments
    is_module: ClassVar[bool] = True  # nn.Sigmoid, as timm's gates
    families: ClassVar[tuple[str, ...]] = ("act",)
    saves_output: ClassVar[bool] = True  # its backward reads the result

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        return inputs[0]  # elementwise: the shape passes through

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return 0  # torchvision counts convolutions and linear layers only

    def label(self, channels: bool = True) -> str:
        return "sigmoid"

    def torch_module(self, w: TorchWriter) -> str:
        return "nn.Sigmoid()"

    def torch_call(self, w: TorchWriter, args: list[str]) -> str:
        return f"torch.sigmoid({args[0]})"

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        w.output("Sigmoid", inputs)
