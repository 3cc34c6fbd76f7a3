"""`groupnorm`: group normalization (Wu & He 2018), PyTorch's nn.GroupNorm as timm's `groupnorm` layer.

Channels are split into `groups` groups; each sample's group is normalized
over its channels and positions, then each channel is scaled and shifted
(`weight`, `bias`). No running statistics: it computes the same in training
and inference. timm's default is 32 groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from .base import ArgSpec, OnnxWriter, Op, Shape, ShapeReport, Signature, StateEntry, TorchWriter

GROUP_NORM_OPSET = 21  # the first opset whose GroupNormalization scales and shifts each channel, as PyTorch does


@dataclass(frozen=True)
class GroupNorm(Op):
    kind: ClassVar[str] = "groupnorm"
    is_module: ClassVar[bool] = True
    spatial: ClassVar[bool] = True
    families: ClassVar[tuple[str, ...]] = ("norm",)  # `policy norm_op = groupnorm`: where BatchNorm would go
    signature: ClassVar[Signature | None] = Signature(
        (ArgSpec("groups", int, 32, aliases=("num_groups",)), ArgSpec("eps", float, 1e-5, minimum=None))
    )

    groups: int = 32
    eps: float = 1e-5

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        channels = inputs[0][0]
        if channels % self.groups:
            report.error(
                "E0204",
                f"`{report.name}`: groups={self.groups} must divide the {channels} channels",
                "groups do not divide the channels",
                "group norm splits the channels into equal groups: choose a divisor of the channel count",
            )
            return None
        return inputs[0]

    def state(self, inputs: Sequence[Shape]) -> list[StateEntry]:
        channels = (inputs[0][0],)
        return [StateEntry("weight", channels, value=1.0, scale=True), StateEntry("bias", channels)]

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return 0

    def label(self, channels: bool = True) -> str:
        return f"GN, {self.groups} groups"

    def torch_module(self, w: TorchWriter) -> str:
        args = [w.attr("groups"), w.in_channels()]
        if w.attr("eps") != repr(1e-5):
            args.append(f"eps={w.attr('eps')}")
        return f"nn.GroupNorm({', '.join(args)})"

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        """GroupNormalization from opset 21; decomposed before.

        Opsets before 18 have no GroupNormalization, and 18's scales and shifts
        per group, not per channel. The decomposition: reshape to (N, groups,
        rest) → InstanceNormalization (unit scale, zero shift) → reshape back →
        per-channel `weight` and `bias`, applied as a BatchNormalization with
        mean 0, variance 1 and epsilon 0: exactly x·weight + bias, reading the
        (C,) parameters as the state_dict holds them.
        """
        params = [w.weight("weight"), w.weight("bias")]
        if w.opset >= GROUP_NORM_OPSET:
            w.output("GroupNormalization", inputs + params, num_groups=self.groups, epsilon=self.eps)
            return
        c, h, width = w.shape
        groups = self.groups
        per_group = (groups, c // groups * h * width)
        grouped = w.step("grouped", "Reshape", [inputs[0], w.constant("grouped_shape", [0, *per_group])], per_group)
        unit = w.float_constant("unit", [1.0] * groups, (groups,))
        zero = w.float_constant("zero", [0.0] * groups, (groups,))
        normed = w.step("normed", "InstanceNormalization", [grouped, unit, zero], per_group, epsilon=self.eps)
        restored = w.step("restored", "Reshape", [normed, w.constant("shape", [0, c, h, width])], (c, h, width))
        mean = w.float_constant("mean", [0.0] * c, (c,))
        var = w.float_constant("var", [1.0] * c, (c,))
        w.output("BatchNormalization", [restored, *params, mean, var], epsilon=0.0)
