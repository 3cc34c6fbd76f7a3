"""`mul`: elementwise product of the current tensor and a named one (spec: `mul input`, `mul NAME`).

An attention gate: a C×1×1 tensor broadcast over a C×H×W one (timm's
SEModule ends `x * gate`). The shapes must agree where neither is 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from ..ir.shape import shape_text
from .base import OnnxWriter, Op, Shape, ShapeReport, TorchWriter


@dataclass(frozen=True)
class Mul(Op):
    kind: ClassVar[str] = "mul"
    layout: ClassVar[str] = "any"  # elementwise: either memory layout
    arity: ClassVar[int] = 2

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        a, b = inputs
        if len(a) == len(b) and all(x == y or 1 in (x, y) for x, y in zip(a, b, strict=True)):
            return tuple(max(x, y) for x, y in zip(a, b, strict=True))
        report.error(
            "E0212",
            f"`mul` needs shapes that broadcast: {shape_text(a)} and {shape_text(b)}",
            "shapes differ where neither is 1",
            "multiply a C×H×W tensor by a C×1×1 gate (after `gap`), or by one of its own shape",
        )
        return None

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return 0

    def label(self, channels: bool = True) -> str:
        return "×"

    def torch_call(self, w: TorchWriter, args: list[str]) -> str:
        return f"{args[1]} * {args[0]}"

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        w.output("Mul", [inputs[1], inputs[0]])
