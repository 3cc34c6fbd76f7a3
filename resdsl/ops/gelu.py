"""`gelu`: the Gaussian error linear unit x·Φ(x), exact (erf) form, as PyTorch's GELU by default."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from .base import OnnxWriter, Op, Shape, ShapeReport, Signature, TorchWriter

GELU_OPSET = 20  # the first ONNX opset with a Gelu operator


@dataclass(frozen=True)
class GELU(Op):
    kind: ClassVar[str] = "gelu"
    layout: ClassVar[str] = "any"  # elementwise: either memory layout
    signature: ClassVar[Signature | None] = Signature(())
    is_module: ClassVar[bool] = True  # nn.GELU (no in-place form); autograd keeps its input, not its output
    families: ClassVar[tuple[str, ...]] = ("act",)

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        return inputs[0]

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return 0

    def label(self, channels: bool = True) -> str:
        return "GELU"

    def torch_module(self, w: TorchWriter) -> str:
        return "nn.GELU()"

    def torch_call(self, w: TorchWriter, args: list[str]) -> str:
        return f"F.gelu({args[0]})"

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
