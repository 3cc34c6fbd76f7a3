"""`sigmoid`: the logistic function 1 / (1 + e^-x), elementwise (attention gates use it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .activation import Activation
from .base import OnnxWriter


@dataclass(frozen=True)
class Sigmoid(Activation):
    kind: ClassVar[str] = "sigmoid"
    module: ClassVar[str] = "Sigmoid"  # nn.Sigmoid, as timm's gates
    function: ClassVar[str] = "torch.sigmoid"
    title: ClassVar[str] = "sigmoid"
    saves_output: ClassVar[bool] = True  # its backward reads the result

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        w.output("Sigmoid", inputs)
