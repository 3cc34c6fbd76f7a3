"""`relu`: the rectifier, max(x, 0)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .activation import Activation
from .base import OnnxWriter


@dataclass(frozen=True)
class ReLU(Activation):
    kind: ClassVar[str] = "relu"
    module: ClassVar[str] = "ReLU"
    function: ClassVar[str] = "torch.relu"
    in_place: ClassVar[bool] = True
    title: ClassVar[str] = "ReLU"
    saves_output: ClassVar[bool] = True  # its backward reads the result

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        w.output("Relu", inputs)
