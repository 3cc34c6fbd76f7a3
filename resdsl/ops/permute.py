"""`channels_last` and `channels_first`: change a feature map's memory layout, as ConvNeXt's blocks do.

`channels_last` is `x.permute(0, 2, 3, 1)` (N×C×H×W to N×H×W×C), where
nn.LayerNorm and nn.Linear act on the channels at every position;
`channels_first` permutes back. The IR keeps every shape C×H×W and records
the layout on each node (`Node.channels_last`, set by the shapes pass from
`Op.layout`), so shapes, parameters and MACs read the same either way; the
ONNX graph is written in the IR's N×C×H×W terms, where a permute is an
Identity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from .base import OnnxWriter, Op, Shape, ShapeReport, Signature, TorchWriter


@dataclass(frozen=True)
class ChannelsLast(Op):
    kind: ClassVar[str] = "channels_last"
    signature: ClassVar[Signature | None] = Signature(())
    spatial: ClassVar[bool] = True
    view: ClassVar[bool] = True  # a permuted view of its operand's memory
    layout: ClassVar[str] = "first"
    dims: ClassVar[str] = "0, 2, 3, 1"

    def out_layout(self, channels_last: bool) -> bool:
        return True

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        return inputs[0]

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return 0

    def label(self, channels: bool = True) -> str:
        return "to N×H×W×C"

    def torch_call(self, w: TorchWriter, args: list[str]) -> str:
        return f"{args[0]}.permute({self.dims})"

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        w.output("Identity", inputs)


@dataclass(frozen=True)
class ChannelsFirst(ChannelsLast):
    kind: ClassVar[str] = "channels_first"
    layout: ClassVar[str] = "last"
    dims: ClassVar[str] = "0, 3, 1, 2"

    def out_layout(self, channels_last: bool) -> bool:
        return False

    def label(self, channels: bool = True) -> str:
        return "to N×C×H×W"
