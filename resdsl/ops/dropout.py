"""`dropout`: zeroes activations with probability p while training; the identity at inference."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from .base import ArgSpec, OnnxWriter, Op, Range, Shape, ShapeReport, Signature, TorchWriter


@dataclass(frozen=True)
class Dropout(Op):
    kind: ClassVar[str] = "dropout"
    layout: ClassVar[str] = "any"  # elementwise: either memory layout
    # In eval mode (or at p = 0) F.dropout returns its input itself, which autograd may keep for the op before
    # (a ReLU): nothing may overwrite it in place.
    saves_output: ClassVar[bool] = True
    signature: ClassVar[Signature | None] = Signature(
        (ArgSpec("p", float, 0.5, minimum=None, range=Range(0, 1, high_open=True)),)
    )

    p: float = 0.5

    def problems(self) -> list[str]:
        return super().problems() + ([] if 0 <= self.p < 1 else [f"p={self.p} is not in [0, 1)"])

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        return inputs[0]

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return 0

    def label(self, channels: bool = True) -> str:
        return f"dropout {self.p:g}"

    def torch_call(self, w: TorchWriter, args: list[str]) -> str:
        return f"F.dropout({args[0]}, {w.stored('p')}, self.training)"

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        w.output("Identity", inputs)  # inference: dropout passes its input through
