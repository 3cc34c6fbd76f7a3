"""`flatten`: C×H×W to one vector of C·H·W features."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from .base import OnnxWriter, Op, Shape, ShapeReport, Signature, TorchWriter


@dataclass(frozen=True)
class Flatten(Op):
    kind: ClassVar[str] = "flatten"
    view: ClassVar[bool] = True  # torch.flatten of a contiguous tensor
    signature: ClassVar[Signature | None] = Signature(())

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        return (math.prod(inputs[0]),)

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return 0

    def label(self, channels: bool = True) -> str:
        return "flatten"

    def torch_call(self, w: TorchWriter, args: list[str]) -> str:
        return f"torch.flatten({args[0]}, 1)"

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        w.output("Flatten", inputs, axis=1)
