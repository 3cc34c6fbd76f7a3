"""`pad_shortcut`: the option-A shortcut (He et al. 2015, §3.3), parameter-free.

Subsamples by `stride` (`x[:, :, ::s, ::s]`), then zero-pads the channels,
`pad_before` ahead and `pad_after` behind. Inserted by the shortcut policy A.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from .base import OnnxWriter, Op, Shape, ShapeReport, TorchWriter
from .window import conv_out


@dataclass(frozen=True)
class PadShortcut(Op):
    kind: ClassVar[str] = "pad_shortcut"
    spatial: ClassVar[bool] = True

    stride: int
    pad_before: int
    pad_after: int

    @property
    def pad(self) -> tuple[int, ...]:
        """The padding as F.pad takes it: last dimension first, channels last."""
        return (0, 0, 0, 0, self.pad_before, self.pad_after)

    def downsampling(self) -> int:
        return self.stride

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        c, h, w = inputs[0]
        return (c + self.pad_before + self.pad_after, conv_out(h, 1, self.stride, 0), conv_out(w, 1, self.stride, 0))

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return 0

    def label(self, channels: bool = True) -> str:
        return f"stride-{self.stride} subsample + {self.pad_before}+{self.pad_after} zero channels"

    def torch_call(self, w: TorchWriter, args: list[str]) -> str:
        stride = w.stored("stride")
        step = f"::{stride}" if stride.isidentifier() or stride.isdigit() else f":: {stride}"  # as ruff spaces it
        return f"F.pad({args[0]}[:, :, {step}, {step}], {w.stored('pad')})"

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        source = inputs[0]
        if self.stride != 1:
            end = 2**63 - 1  # to the end of the axis
            steps = [
                w.constant("starts", [0, 0]),
                w.constant("ends", [end, end]),
                w.constant("axes", [2, 3]),
                w.constant("steps", [self.stride] * 2),
            ]
            source = w.step("subsample", "Slice", [source, *steps], (w.inputs[0][0], *w.shape[1:]))
        pads = w.constant("pads", [0, self.pad_before, 0, 0, 0, self.pad_after, 0, 0])
        w.output("Pad", [source, pads], mode="constant")
