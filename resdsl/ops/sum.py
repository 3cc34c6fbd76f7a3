"""`sum`: an elementwise add of two tensors neither of which lies on the other's path (spec: `add NAME`).

An `add` whose named tensor is upstream of its main path is a residual add
(`ops/add.py`), whose shapes the shortcut policy reconciles. An `add` of two
separate paths (an FPN's top-down add of an upsampled coarse map onto a
lateral one) has no shortcut to project: its operands' shapes must be equal,
and the compiler never inserts anything on either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from ..ir.shape import shape_text
from .base import OnnxWriter, Op, Shape, ShapeReport, TorchWriter


@dataclass(frozen=True)
class Sum(Op):
    kind: ClassVar[str] = "sum"
    layout: ClassVar[str] = "any"  # elementwise: either memory layout (its operands share one)
    arity: ClassVar[int] = 2

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        main, other = inputs
        if main == other:
            return main
        if len(main) == len(other) == 3 and main[1:] != other[1:]:
            coarse, fine = (other, main) if other[1] * other[2] < main[1] * main[2] else (main, other)
            which = "the named one" if coarse is other else "the main one"
            hint = (
                f"upsample the coarser tensor ({which}, {coarse[1]}×{coarse[2]}) to {fine[1]}×{fine[2]} first: "
                "`upsample(to=NAME)` takes NAME's height and width"
            )
        else:
            hint = "match the channels with a 1×1 conv (an FPN's lateral conv) on one of them"
        report.error(
            "E0231",
            f"`add` of two separate paths needs equal shapes: main {shape_text(main)}, named {shape_text(other)}",
            "neither tensor is upstream of the other: no shortcut to project",
            hint,
        )
        return None

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return 0

    def label(self, channels: bool = True) -> str:
        return "+"

    def torch_call(self, w: TorchWriter, args: list[str]) -> str:
        return f"{args[0]} + {args[1]}"

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        w.output("Add", inputs)
