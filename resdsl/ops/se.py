"""`se`: squeeze-and-excitation (Hu et al. 2018), laid out as timm's SEModule.

Global mean → 1×1 conv `fc1` (with bias) to `se_channels(C)` → ReLU → 1×1
conv `fc2` (with bias) back to C → sigmoid, multiplied into the input. The
squeezed width is timm's: `make_divisible(C * rd_ratio, rd_divisor,
round_limit=0)`. `reduction=r` is another spelling of `rd_ratio=1/r`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ..diagnostics import Span, error
from ..ir.expr import BinOp, Expr, Num
from .base import ArgSpec, OnnxWriter, Op, Shape, ShapeReport, Signature, StateEntry, TorchWriter, fan_in_bound

CLASS = "SqueezeExcite"
RD_RATIO = 1 / 16  # timm's default

# The module class the generated file defines when a network uses `se`; its width rule is se_channels.
SOURCE = f'''\
class {CLASS}(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018), laid out as timm's SEModule."""

    def __init__(self, channels, rd_ratio=1 / 16, rd_divisor=8):
        super().__init__()
        squeezed = max(rd_divisor, int(channels * rd_ratio + rd_divisor / 2) // rd_divisor * rd_divisor)
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))
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
            ArgSpec("reduction", int, None),
            ArgSpec("rd_divisor", int, 8, aliases=("divisor",)),
            ArgSpec("rd_ratio", float, None, minimum=None),
        )
    )

    rd_ratio: float = RD_RATIO
    rd_divisor: int = 8

    @classmethod
    def complete(cls, values: dict[str, Any], exprs: dict[str, Expr], span: Span) -> None:
        """`rd_ratio` from `reduction` (1 / reduction, symbolically where it is), else timm's 1/16."""
        reduction = values.pop("reduction")
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
        elif not 0 < values["rd_ratio"] <= 1:
            raise error("E0108", f"`se` rd_ratio must be in (0, 1], got {values['rd_ratio']}", span, "out of range")

    def problems(self) -> list[str]:
        return super().problems() + ([] if 0 < self.rd_ratio <= 1 else [f"rd_ratio={self.rd_ratio} is not in (0, 1]"])

    def squeezed(self, channels: int) -> int:
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
        reduction = 1 / self.rd_ratio
        if reduction == round(reduction):
            return f"squeeze-excite, reduction {round(reduction)}"
        return f"squeeze-excite, ratio {self.rd_ratio:g}"

    def torch_module(self, w: TorchWriter) -> str:
        args = [w.in_channels()]
        for name, default in (("rd_ratio", repr(RD_RATIO)), ("rd_divisor", "8")):
            if w.attr(name) != default:
                args.append(f"{name}={w.attr(name)}")
        return f"{CLASS}({', '.join(args)})"

    def torch_helpers(self) -> Mapping[str, str]:
        return {CLASS: SOURCE}

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        """x · sigmoid(fc2(relu(fc1(mean over H, W of x)))), fc1 and fc2 1×1 convs with bias."""
        channels = w.shape[0]
        squeezed = self.squeezed(channels)
        conv: dict[str, Any] = {"kernel_shape": [1, 1]}
        pooled = w.step("pool", "GlobalAveragePool", inputs, (channels, 1, 1))
        fc1 = w.step("fc1", "Conv", [pooled, w.weight("fc1.weight"), w.weight("fc1.bias")], (squeezed, 1, 1), **conv)
        relu = w.step("relu", "Relu", [fc1], (squeezed, 1, 1))
        fc2 = w.step("fc2", "Conv", [relu, w.weight("fc2.weight"), w.weight("fc2.bias")], (channels, 1, 1), **conv)
        gate = w.step("gate", "Sigmoid", [fc2], (channels, 1, 1))
        w.output("Mul", [inputs[0], gate])
