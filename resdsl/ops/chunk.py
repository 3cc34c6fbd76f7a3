"""`chunk`: one piece of a tensor cut along the channels (spec: `a, b, c = split`).

A `split` statement makes one `chunk` per name, each reading the split
tensor: piece `index` of `count` equal pieces, channels `index · C/count` up
to the next piece's. Each piece is a node of its own, so a path from one
piece never passes through another (Res2Net adds piece 2 onto what piece 1
became: a plain sum of separate paths, not a residual add). PyTorch writes
the pieces together, `a, b, c = x.chunk(3, 1)` (views, no copy); ONNX
writes a `Slice` per piece.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from ..ir.shape import shape_text
from .base import OnnxWriter, Op, Shape, ShapeReport, TorchWriter


@dataclass(frozen=True)
class Chunk(Op):
    kind: ClassVar[str] = "chunk"
    view: ClassVar[bool] = True  # a view of the split tensor: writing into a piece writes into it

    index: int  # which piece, from 0
    count: int  # how many equal pieces the tensor is cut into

    def problems(self) -> list[str]:
        found = super().problems()
        if not 0 <= self.index < self.count:
            found.append(f"piece {self.index} of {self.count}")
        return found

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        (shape,) = inputs
        if shape[0] % self.count:
            if self.index:  # every piece reads the split tensor: the first one reports the split, once
                return None
            report.error(
                "E0204",
                f"`split` cuts {shape_text(shape)} into {self.count} equal pieces, "
                f"and {self.count} does not divide its {shape[0]} channels",
                f"{shape[0]} channels into {self.count} pieces",
                "give the split tensor a multiple of the number of names as its channels",
            )
            return None
        return (shape[0] // self.count, *shape[1:])

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return 0

    def label(self, channels: bool = True) -> str:
        return f"split {self.index + 1}/{self.count}"

    def torch_call(self, w: TorchWriter, args: list[str]) -> str:
        """One piece alone; the backend writes a split's pieces together, `a, b = x.chunk(2, 1)`."""
        return f"{args[0]}.chunk({self.count}, 1)[{self.index}]"

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        width = w.shape[0]
        start, end = w.constant("start", [self.index * width]), w.constant("end", [(self.index + 1) * width])
        w.output("Slice", [inputs[0], start, end, w.constant("axes", [1])])
