"""`hard_swish`: x · relu6(x + 3) / 6, elementwise (Howard et al. 2019, MobileNetV3; PyTorch's Hardswish)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .activation import Activation
from .base import OnnxWriter

HARD_SWISH_OPSET = 14  # the first ONNX opset with a HardSwish operator


@dataclass(frozen=True)
class HardSwish(Activation):
    kind: ClassVar[str] = "hard_swish"
    module: ClassVar[str] = "Hardswish"
    function: ClassVar[str] = "F.hardswish"
    in_place: ClassVar[bool] = True
    title: ClassVar[str] = "hard-swish"
    saves_output: ClassVar[bool] = False  # autograd keeps its input (in place too), so its output may be overwritten

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        if w.opset >= HARD_SWISH_OPSET:
            w.output("HardSwish", inputs)
            return
        # Before opset 14: x · HardSigmoid(x) with α = 1/6, β = 1/2, which is relu6(x + 3) / 6.
        gate = w.step("gate", "HardSigmoid", inputs, w.shape, alpha=1 / 6, beta=0.5)
        w.output("Mul", [inputs[0], gate])
