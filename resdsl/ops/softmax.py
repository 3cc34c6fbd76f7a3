"""`softmax`: a softmax across branches (spec: `softmax(2)`), the attention weights of selective kernels.

The channels hold one chunk per branch, C = branches · c: channel i of each
chunk competes with channel i of the others, so at every position the
`branches` weights of a channel sum to one (SKNet's "select" weights,
ResNeSt's radix softmax with one cardinal group). timm views the tensor as
N × branches × c × … and takes the softmax over the branches; so does this
op, `x.unflatten(1, (branches, -1)).softmax(1).flatten(1, 2)`, and in ONNX
a `Reshape`, a `Softmax` on axis 1 and a `Reshape` back. `select` then
weighs the branches with the chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from ..ir.shape import shape_text
from .base import ArgSpec, OnnxWriter, Op, Shape, ShapeReport, Signature, TorchWriter


@dataclass(frozen=True)
class Softmax(Op):
    kind: ClassVar[str] = "softmax"
    signature: ClassVar[Signature | None] = Signature((ArgSpec("branches", int, bound="channels"),))

    branches: int

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        (shape,) = inputs
        if shape[0] % self.branches:
            report.error(
                "E0204",
                f"`softmax({self.branches})` needs one chunk of channels per branch, "
                f"and {self.branches} does not divide the {shape[0]} channels of {shape_text(shape)}",
                f"{shape[0]} channels, {self.branches} branches",
                "give the weights `branches` times the channels of each branch (a 1×1 conv to branches · C)",
            )
            return None
        return tuple(shape)

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return 0  # no weights: torchvision counts convolutions and linear layers only

    def label(self, channels: bool = True) -> str:
        return f"softmax over {self.branches}"

    def torch_call(self, w: TorchWriter, args: list[str]) -> str:
        return f"{args[0]}.unflatten(1, ({w.stored('branches')}, -1)).softmax(1).flatten(1, 2)"

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        channels, *rest = w.shape
        split = (self.branches, channels // self.branches, *rest)
        grouped = w.step("grouped", "Reshape", [inputs[0], w.constant("branches", [0, *split])], split)
        weights = w.step("weights", "Softmax", [grouped], split, axis=1)
        w.output("Reshape", [weights, w.constant("shape", [0, channels, *rest])])
