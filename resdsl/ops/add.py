"""`add`: the residual add, main path (operand 0) plus shortcut (operand 1). Spec: `add input` / `add NAME`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from .base import OnnxWriter, Op, Shape, ShapeReport, TorchWriter


@dataclass(frozen=True)
class Add(Op):
    kind: ClassVar[str] = "add"
    layout: ClassVar[str] = "any"  # elementwise: either memory layout
    arity: ClassVar[int] = 2

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        # The shortcut policy makes the operands agree (passes/projections.py); until then the main path rules.
        return inputs[0]

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return 0

    def label(self, channels: bool = True) -> str:
        return "+"

    def torch_call(self, w: TorchWriter, args: list[str]) -> str:
        return f"{args[0]} + {args[1]}"

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        w.output("Add", inputs)
