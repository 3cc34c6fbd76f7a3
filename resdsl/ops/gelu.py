"""`gelu`: the Gaussian error linear unit x·Φ(x), exact (erf) form, as PyTorch's GELU by default."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from .activation import Activation
from .base import OnnxWriter

GELU_OPSET = 20  # the first ONNX opset with a Gelu operator


@dataclass(frozen=True)
class GELU(Activation):
    kind: ClassVar[str] = "gelu"
    module: ClassVar[str] = "GELU"  # no in-place form; autograd keeps its input, not its output
    function: ClassVar[str] = "F.gelu"
    title: ClassVar[str] = "GELU"

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        if w.opset >= GELU_OPSET:
            w.output("Gelu", inputs)  # approximate="none" by default: the erf form
            return
        # Before opset 20: x · 0.5 · (1 + erf(x / √2)), as PyTorch computes it.
        x, shape = inputs[0], w.shape
        scaled = w.step("scaled", "Mul", [x, w.float_constant("sqrt1_2", [1 / math.sqrt(2)], ())], shape)
        erf = w.step("erf", "Erf", [scaled], shape)
        cdf = w.step("cdf", "Add", [erf, w.float_constant("1", [1.0], ())], shape)
        half = w.step("half", "Mul", [x, w.float_constant("0.5", [0.5], ())], shape)
        w.output("Mul", [half, cdf])
