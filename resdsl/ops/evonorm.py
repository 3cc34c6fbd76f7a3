"""`evonorm_s0`: EvoNorm-S0 (Liu et al. 2020), a norm with its own nonlinearity, as timm's EvoNorm2dS0.

y = x · sigmoid(v · x) / group_std(x) · weight + bias, where group_std is the
standard deviation (biased, plus `eps`) over each sample's group of channels
and all positions, `groups` groups (or channels // `group_size`). It needs
no activation after it: the norm policy places none (`resnetv2_50d_evos`).
`act=false` drops the nonlinearity and `v`: x · weight + bias, timm's
`apply_act=False`. No running statistics: training and inference agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ..diagnostics import Span
from ..ir.expr import Expr
from .base import ArgSpec, OnnxWriter, Op, Shape, ShapeReport, Signature, StateEntry, TorchWriter

CLASS = "EvoNormS0"

SOURCE = f'''\
class {CLASS}(nn.Module):
    """EvoNorm-S0 (Liu et al. 2020): x * sigmoid(v * x) / group std, scaled and shifted (timm's EvoNorm2dS0)."""

    def __init__(self, channels: int, groups: int = 32, eps: float = 1e-5, act: bool = True):
        super().__init__()
        self.groups, self.eps = groups, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.v = nn.Parameter(torch.ones(channels)) if act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.v is not None:
            n, c, h, w = x.shape
            grouped = x.reshape(n, self.groups, -1)
            std = (grouped.var(dim=2, unbiased=False, keepdim=True) + self.eps).sqrt()
            gated = x * torch.sigmoid(x * self.v.view(1, -1, 1, 1))
            x = (gated.reshape(n, self.groups, -1) / std).reshape(n, c, h, w)
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)'''


@dataclass(frozen=True)
class EvoNormS0(Op):
    kind: ClassVar[str] = "evonorm_s0"
    is_module: ClassVar[bool] = True
    spatial: ClassVar[bool] = True
    families: ClassVar[tuple[str, ...]] = ("norm",)  # `policy norm_op = evonorm_s0`
    signature: ClassVar[Signature | None] = Signature(
        (
            ArgSpec("groups", int, 32),
            ArgSpec("group_size", int, None),
            ArgSpec("eps", float, 1e-5, minimum=None),
            ArgSpec("act", bool, True),
        )
    )

    groups: int = 32
    group_size: int = 0  # 0: `groups` groups; else channels // group_size of them
    eps: float = 1e-5
    act: bool = True

    @classmethod
    def complete(cls, values: dict[str, Any], exprs: dict[str, Expr], span: Span) -> None:
        if values.get("group_size") is None:
            values["group_size"] = 0

    def includes_act(self) -> bool:
        return self.act

    def group_count(self, channels: int) -> int:
        return channels // self.group_size if self.group_size else self.groups

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        channels = inputs[0][0]
        size = self.group_size or (channels // self.groups if channels % self.groups == 0 else 0)
        if not size or channels % size:
            what = f"group_size={self.group_size}" if self.group_size else f"groups={self.groups}"
            report.error(
                "E0204",
                f"`{report.name}`: {what} must divide the {channels} channels",
                "groups do not divide the channels",
                "EvoNorm-S0 splits the channels into equal groups: choose a divisor of the channel count",
            )
            return None
        return inputs[0]

    def state(self, inputs: Sequence[Shape]) -> list[StateEntry]:
        channels = (inputs[0][0],)
        entries = [StateEntry("weight", channels, value=1.0, scale=True), StateEntry("bias", channels)]
        return entries + [StateEntry("v", channels, value=1.0)] * self.act

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return 0

    def label(self, channels: bool = True) -> str:
        return "EvoNorm-S0" + ("" if self.act else ", no act")

    def torch_module(self, w: TorchWriter) -> str:
        channels = w.in_channels()
        groups = w.attr("groups")
        if self.group_size:
            whole = channels.isdigit()
            groups = repr(self.group_count(int(channels))) if whole else f"{channels} // {w.attr('group_size')}"
        args = [channels]
        if groups != "32":
            args.append(f"groups={groups}")
        if w.attr("eps") != repr(1e-5):
            args.append(f"eps={w.attr('eps')}")
        if not self.act:
            args.append("act=False")
        return f"{CLASS}({', '.join(args)})"

    def torch_helpers(self) -> Mapping[str, str]:
        return {CLASS: SOURCE}

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        """x · sigmoid(x · v), divided per group by sqrt(biased variance + eps) (the group, reshaped to
        (groups, rest, 1), averaged by GlobalAveragePool), then scaled and shifted per channel."""
        c, h, width = w.shape
        column = w.constant("column", [-1, 1, 1])

        def per_channel(key: str) -> str:
            return w.step(f"{key}_column", "Reshape", [w.weight(key), column], (c, 1, 1), batched=False)

        x = inputs[0]
        if self.act:
            groups = self.group_count(c)
            rest = c // groups * h * width
            grouped_shape = w.constant("grouped_shape", [0, groups, rest, 1])
            grouped = w.step("grouped", "Reshape", [x, grouped_shape], (groups, rest, 1))
            mean = w.step("mean", "GlobalAveragePool", [grouped], (groups, 1, 1))
            centred = w.step("centred", "Sub", [grouped, mean], (groups, rest, 1))
            square = w.step("square", "Mul", [centred, centred], (groups, rest, 1))
            var = w.step("var", "GlobalAveragePool", [square], (groups, 1, 1))
            eps = w.float_constant("eps", [self.eps], (1,))
            std = w.step("std", "Sqrt", [w.step("var_eps", "Add", [var, eps], (groups, 1, 1))], (groups, 1, 1))
            scaled = w.step("xv", "Mul", [x, per_channel("v")], (c, h, width))
            gated = w.step("gated", "Mul", [x, w.step("gate", "Sigmoid", [scaled], (c, h, width))], (c, h, width))
            gated_groups = w.step("gated_groups", "Reshape", [gated, grouped_shape], (groups, rest, 1))
            normed = w.step("normed", "Div", [gated_groups, std], (groups, rest, 1))
            x = w.step("restored", "Reshape", [normed, w.constant("shape", [0, c, h, width])], (c, h, width))
        weighted = w.step("weighted", "Mul", [x, per_channel("weight")], (c, h, width))
        w.output("Add", [weighted, per_channel("bias")])
