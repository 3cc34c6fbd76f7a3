"""`se`: squeeze-and-excitation (Hu et al. 2018), laid out as timm's SEModule.

Global mean → 1×1 conv `fc1` (with bias) to `se_channels(C)` → ReLU → 1×1
conv `fc2` (with bias) back to C → sigmoid, multiplied into the input. The
squeezed width is timm's: `make_divisible(C * rd_ratio, rd_divisor,
round_limit=0)`. `reduction=r` is another spelling of `rd_ratio=1/r`.
`rd_channels=n` gives the squeezed width itself, as timm's `rd_channels`
(RegNetY squeezes to a quarter of its block's input width, the legacy SENet
to `C // 16`): a width no ratio of C gives. `act=silu` is the activation
between the two convs (timm's `act_layer`: RegNetZ's), ReLU by default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ..diagnostics import Span, error
from ..ir.expr import BinOp, Expr, Num
from .base import ArgSpec, OnnxWriter, Op, Range, Shape, ShapeReport, Signature, StateEntry, TorchWriter, fan_in_bound

CLASS = "SqueezeExcite"
ACTS = {"relu": "nn.ReLU", "silu": "nn.SiLU"}  # the activations between fc1 and fc2, with their modules
RD_RATIO = 1 / 16  # timm's default

# The module class the generated file defines when a network uses `se`; its width rule is se_channels.
SOURCE = f'''\
class {CLASS}(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018), laid out as timm's SEModule."""

    def __init__(self, channels, rd_ratio=1 / 16, rd_divisor=8, rd_channels=None, act_layer=nn.ReLU):
        super().__init__()
        if rd_channels is None:
            rd_channels = max(rd_divisor, int(channels * rd_ratio + rd_divisor / 2) // rd_divisor * rd_divisor)
        self.fc1 = nn.Conv2d(channels, rd_channels, 1)
        self.act = act_layer(inplace=True)
        self.fc2 = nn.Conv2d(rd_channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.act(self.fc1(x.mean((2, 3), keepdim=True)))
        return x * torch.sigmoid(self.fc2(scale))'''


def se_channels(channels: int, rd_ratio: float, rd_divisor: int) -> int:
    """The squeezed width: timm's `make_divisible(channels * rd_ratio, rd_divisor, round_limit=0)`."""
    return max(rd_divisor, int(channels * rd_ratio + rd_divisor / 2) // rd_divisor * rd_divisor)


@dataclass(frozen=True)
class SqueezeExcite(Op):
    kind: ClassVar[str] = "se"
    is_module: ClassVar[bool] = True
    families: ClassVar[tuple[str, ...]] = ("attn",)
    spatial: ClassVar[bool] = True
    # `reduction` first: `se(16)` has always meant a reduction of 16.
    signature: ClassVar[Signature | None] = Signature(
        (
            ArgSpec("reduction", int, None, bound="channels"),
            ArgSpec("rd_divisor", int, None, aliases=("divisor",), bound="channels"),
            ArgSpec("rd_ratio", float, None, minimum=None, range=Range(0, 1, low_open=True)),
            ArgSpec("rd_channels", int, None, bound="channels"),
            ArgSpec("act", str, "relu", words=tuple(ACTS)),
        )
    )

    rd_ratio: float = RD_RATIO
    rd_divisor: int = 8
    rd_channels: int | None = None  # None: from rd_ratio and rd_divisor
    act: str = "relu"  # one of ACTS

    @classmethod
    def complete(cls, values: dict[str, Any], exprs: dict[str, Expr], span: Span) -> None:
        """`rd_ratio` from `reduction` (1 / reduction, symbolically where it is), else timm's 1/16; a given
        `rd_channels` is the width itself, so no ratio or divisor may come with it."""
        reduction = values.pop("reduction")
        if values["rd_channels"] is not None:
            others = (("reduction", reduction), ("rd_ratio", values["rd_ratio"]), ("rd_divisor", values["rd_divisor"]))
            given = [name for name, value in others if value is not None]
            if given:
                raise error(
                    "E0102",
                    f"`se` takes `rd_channels` or `{given[0]}`, not both",
                    span,
                    "two widths given",
                    "`rd_channels` is the squeezed width itself: no ratio or divisor applies to it",
                )
        if values["rd_divisor"] is None:
            values["rd_divisor"] = 8
        if reduction is not None and values["rd_ratio"] is not None:
            raise error(
                "E0102",
                "`se` takes `reduction` or `rd_ratio`, not both",
                span,
                "two widths given",
                "`reduction=r` means `rd_ratio=1/r`",
            )
        if reduction is not None:
            values["rd_ratio"] = 1 / reduction
            if "reduction" in exprs:
                exprs["rd_ratio"] = BinOp("/", Num(1, span), exprs.pop("reduction"), span)
        elif values["rd_ratio"] is None:
            values["rd_ratio"] = RD_RATIO

    def problems(self) -> list[str]:
        problems = super().problems()
        if not 0 < self.rd_ratio <= 1:
            problems.append(f"rd_ratio={self.rd_ratio} is not in (0, 1]")
        if self.rd_channels is not None and (type(self.rd_channels) is not int or self.rd_channels < 1):
            problems.append(f"rd_channels={self.rd_channels!r} is not a positive int or None")
        if self.act not in ACTS:
            problems.append(f"act={self.act!r} is not one of {', '.join(ACTS)}")
        return problems

    def squeezed(self, channels: int) -> int:
        if self.rd_channels is not None:
            return self.rd_channels
        return se_channels(channels, self.rd_ratio, self.rd_divisor)

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        return inputs[0]

    def state(self, inputs: Sequence[Shape]) -> list[StateEntry]:
        channels = inputs[0][0]
        squeezed = self.squeezed(channels)
        entries = []
        for name, shape in (("fc1", (squeezed, channels, 1, 1)), ("fc2", (channels, squeezed, 1, 1))):
            bound = fan_in_bound(shape)
            entries += [
                StateEntry(f"{name}.weight", shape, bound=bound),
                StateEntry(f"{name}.bias", shape[:1], bound=bound),
            ]
        return entries

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        channels = inputs[0][0]  # its two 1×1 convs, on the pooled 1×1 map
        return 2 * channels * self.squeezed(channels)

    def label(self, channels: bool = True) -> str:
        act = "" if self.act == "relu" else f", {self.act}"
        if self.rd_channels is not None:
            return (f"squeeze-excite to {self.rd_channels}" if channels else "squeeze-excite") + act
        reduction = 1 / self.rd_ratio
        if reduction == round(reduction):
            return f"squeeze-excite, reduction {round(reduction)}{act}"
        return f"squeeze-excite, ratio {self.rd_ratio:g}{act}"

    def torch_module(self, w: TorchWriter) -> str:
        args = [w.in_channels()]
        given = self.rd_channels is not None
        for name, default in (("rd_ratio", repr(RD_RATIO)), ("rd_divisor", "8"), ("rd_channels", "None")):
            if w.attr(name) != default and not (given and name != "rd_channels"):
                args.append(f"{name}={w.attr(name)}")
        if self.act != "relu":
            args.append(f"act_layer={ACTS[self.act]}")
        return f"{w.helper(CLASS)}({', '.join(args)})"

    def torch_helpers(self) -> Mapping[str, str]:
        return {CLASS: SOURCE}

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        """x · sigmoid(fc2(act(fc1(mean over H, W of x)))), fc1 and fc2 1×1 convs with bias."""
        channels = w.shape[0]
        squeezed = self.squeezed(channels)
        conv: dict[str, Any] = {"kernel_shape": [1, 1]}
        pooled = w.step("pool", "GlobalAveragePool", inputs, (channels, 1, 1))
        fc1 = w.step("fc1", "Conv", [pooled, w.weight("fc1.weight"), w.weight("fc1.bias")], (squeezed, 1, 1), **conv)
        if self.act == "silu":  # x · sigmoid(x): no opset up to 21 has the operator
            act = w.step("act", "Mul", [fc1, w.step("act_gate", "Sigmoid", [fc1], (squeezed, 1, 1))], (squeezed, 1, 1))
        else:
            act = w.step("relu", "Relu", [fc1], (squeezed, 1, 1))
        fc2 = w.step("fc2", "Conv", [act, w.weight("fc2.weight"), w.weight("fc2.bias")], (channels, 1, 1), **conv)
        gate = w.step("gate", "Sigmoid", [fc2], (channels, 1, 1))
        w.output("Mul", [inputs[0], gate])
