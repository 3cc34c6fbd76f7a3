"""`input`: the network's input tensor, the one node without operands (from the `input` statement)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from .base import OnnxWriter, Op, Shape, ShapeReport, TorchWriter


@dataclass(frozen=True)
class Input(Op):
    """The graph's source. Its shape is the network's input shape (`IR.input_shape`), not an attribute."""

    kind: ClassVar[str] = "input"
    arity: ClassVar[int] = 0

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        raise AssertionError("the shapes pass gives the input node the network's input shape")

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return 0

    def label(self, channels: bool = True) -> str:
        return "input"

    def torch_call(self, w: TorchWriter, args: list[str]) -> str:
        return "x"  # the forward's argument

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        """Nothing to write: the backend declares the graph's input."""
