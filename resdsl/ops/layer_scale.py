"""`layer_scale`: a learned per-channel scale (Touvron et al. 2021), as ConvNeXt's blocks hold it.

The output is the input times one learned number per channel, which starts
at `init` (timm's `ls_init_value`, 1e-6 in ConvNeXt), so a residual branch
starts near zero. It is a bare parameter of the block, not a module: its
name is its state_dict key (`gamma = layer_scale(1e-6)` is timm's
`stages.0.blocks.0.gamma`), and the block's forward multiplies by it,
`x.mul(self.gamma.reshape(1, -1, 1, 1))`, as timm's ConvNeXtBlock does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from .base import ArgSpec, OnnxWriter, Op, Range, Shape, ShapeReport, Signature, StateEntry, TorchWriter


@dataclass(frozen=True)
class LayerScale(Op):
    kind: ClassVar[str] = "layer_scale"
    is_module: ClassVar[bool] = True  # an attribute with a path and state,
    parameter: ClassVar[bool] = True  # an nn.Parameter, not a module
    spatial: ClassVar[bool] = True
    signature: ClassVar[Signature | None] = Signature(
        (ArgSpec("init", float, 1e-6, aliases=("init_values",), minimum=None, range=Range(0, low_open=True)),)
    )

    init: float = 1e-6

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        return inputs[0]

    def state(self, inputs: Sequence[Shape]) -> list[StateEntry]:
        return [StateEntry("", (inputs[0][0],), value=self.init, scale=True)]

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return 0

    def label(self, channels: bool = True) -> str:
        return "layer scale"

    def torch_module(self, w: TorchWriter) -> str:
        return f"nn.Parameter({w.attr('init')} * torch.ones({w.in_channels()}))"

    def torch_apply(self, attribute: str, arg: str) -> str:
        return f"{arg}.mul({attribute}.reshape(1, -1, 1, 1))"

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        c = w.shape[0]
        column = [w.weight(""), w.constant("column_shape", [-1, 1, 1])]
        w.output("Mul", [inputs[0], w.step("column", "Reshape", column, (c, 1, 1), batched=False)])
