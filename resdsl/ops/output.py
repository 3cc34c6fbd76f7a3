"""`output`: one of a network's named outputs (spec: `return p2, p3, p4, p5`), a sink of the graph.

A network without a `return` statement has one output, the last statement's
tensor, and no output nodes. With one, each name becomes an output node
reading that tensor: the generated forward returns them as a dict in the
statement's order, and the ONNX graph has one output of that name each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from .base import OnnxWriter, Op, Shape, ShapeReport, TorchWriter


@dataclass(frozen=True)
class Output(Op):
    kind: ClassVar[str] = "output"

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        return inputs[0]

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return 0

    def label(self, channels: bool = True) -> str:
        return "output"

    def torch_call(self, w: TorchWriter, args: list[str]) -> str:
        return args[0]

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        w.output("Identity", inputs)
