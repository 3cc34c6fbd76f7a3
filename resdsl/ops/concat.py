"""`concat`: tensors joined along the channels (U-Net's skips, Res2Net's splits). Spec: `concat NAME, NAME`.

Its operands are the current tensor (or the one `from` names) followed by the
named ones, in order; their heights and widths must agree. `torch.cat(..., 1)`
in PyTorch, a `Concat` on axis 1 in ONNX.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from ..ir.shape import shape_text
from .base import OnnxWriter, Op, Shape, ShapeReport, TorchWriter


@dataclass(frozen=True)
class Concat(Op):
    kind: ClassVar[str] = "concat"
    arity: ClassVar[int] = 2

    count: int = 2  # how many tensors it joins (its operands)

    def operand_count(self) -> int:
        return self.count

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        flat = [shape for shape in inputs if len(shape) != 3]
        if flat:
            report.error(
                "E0207",
                f"`concat` joins C×H×W feature maps along the channels, got the flat {shape_text(flat[0])}",
                "input is flat",
                "concat the feature maps before `flatten`",
            )
            return None
        if len({shape[1:] for shape in inputs}) != 1:
            shapes = ", ".join(shape_text(shape) for shape in inputs)
            report.error(
                "E0232",
                f"`concat` joins C×H×W tensors of one height and width along the channels, got {shapes}",
                "heights and widths differ",
                "upsample the coarser tensor to the finer one's size first (`upsample(to=NAME)`)",
            )
            return None
        return (sum(shape[0] for shape in inputs), *inputs[0][1:])

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return 0

    def label(self, channels: bool = True) -> str:
        return "concat"

    def torch_call(self, w: TorchWriter, args: list[str]) -> str:
        return f"torch.cat([{', '.join(args)}], 1)"

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        w.output("Concat", inputs, axis=1)
