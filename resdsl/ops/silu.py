"""`silu`: the sigmoid-weighted linear unit x·sigmoid(x) (also called swish), elementwise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .activation import Activation
from .base import OnnxWriter


@dataclass(frozen=True)
class SiLU(Activation):
    kind: ClassVar[str] = "silu"
    module: ClassVar[str] = "SiLU"
    function: ClassVar[str] = "F.silu"
    in_place: ClassVar[bool] = True
    title: ClassVar[str] = "SiLU"
    saves_output: ClassVar[bool] = False  # autograd keeps its input (in place too), so its output may be overwritten

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        # ONNX has no SiLU (Swish) operator up to opset 21.
        gate = w.step("gate", "Sigmoid", inputs, w.shape)
        w.output("Mul", [inputs[0], gate])
