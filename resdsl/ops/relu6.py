"""`relu6`: the bounded rectifier min(max(x, 0), 6), elementwise (PyTorch's ReLU6)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .activation import Activation
from .base import OnnxWriter


@dataclass(frozen=True)
class ReLU6(Activation):
    kind: ClassVar[str] = "relu6"
    module: ClassVar[str] = "ReLU6"
    function: ClassVar[str] = "F.relu6"
    in_place: ClassVar[bool] = True
    title: ClassVar[str] = "ReLU6"
    saves_output: ClassVar[bool] = False  # autograd keeps its input (in place too), so its output may be overwritten

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        # Clip takes its bounds as inputs from opset 11 on.
        w.output("Clip", [inputs[0], w.float_constant("min", [0.0], ()), w.float_constant("max", [6.0], ())])
