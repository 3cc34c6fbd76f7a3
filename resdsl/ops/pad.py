"""`pad`: constant padding of height and width, PyTorch's nn.ConstantPad2d.

BiT's stem pads its conv's output with zeros before a max-pool that pads
nothing (timm's `fixed` stem: `stem.pad`, `stem.pool`), which differs from a
max-pool's own padding: that pads with −∞.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from .base import ArgSpec, OnnxWriter, Op, Shape, ShapeReport, Signature, TorchWriter


@dataclass(frozen=True)
class Pad(Op):
    kind: ClassVar[str] = "pad"
    is_module: ClassVar[bool] = True
    spatial: ClassVar[bool] = True
    signature: ClassVar[Signature | None] = Signature(
        (ArgSpec("padding", int, aliases=("p",), minimum=0), ArgSpec("value", float, 0.0, minimum=None))
    )

    padding: int
    value: float = 0.0

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        c, h, w = inputs[0]
        return (c, h + 2 * self.padding, w + 2 * self.padding)

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return 0

    def label(self, channels: bool = True) -> str:
        return f"pad {self.padding}" + (f", value {self.value:g}" if self.value else "")

    def torch_module(self, w: TorchWriter) -> str:
        return f"nn.ConstantPad2d({w.attr('padding')}, {w.attr('value')})"

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        p = self.padding
        pads = w.constant("pads", [0, 0, p, p, 0, 0, p, p])
        w.output("Pad", [inputs[0], pads, w.float_constant("value", [self.value], ())], mode="constant")
