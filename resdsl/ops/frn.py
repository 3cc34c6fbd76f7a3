"""`frn`: filter response normalization with a thresholded linear unit (Singh & Krishnan 2020),
timm's FilterResponseNormTlu2d.

y = max(x / sqrt(mean over positions of x² + eps) · weight + bias, tau):
each sample's channel is divided by its root mean square (no mean taken
out), scaled and shifted, and the TLU (a learned per-channel floor `tau`)
is its nonlinearity, so the norm policy places no activation after it
(`resnetv2_50d_frn`). `act=false` drops the TLU and `tau`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from .base import ArgSpec, OnnxWriter, Op, Shape, ShapeReport, Signature, StateEntry, TorchWriter

CLASS = "FilterResponseNorm"

SOURCE = f'''\
class {CLASS}(nn.Module):
    """Filter response normalization with a TLU (Singh & Krishnan 2020; timm's FilterResponseNormTlu2d)."""

    def __init__(self, channels: int, eps: float = 1e-5, act: bool = True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.tau = nn.Parameter(torch.zeros(channels)) if act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * torch.rsqrt(x.square().mean(dim=(2, 3), keepdim=True) + self.eps)
        x = x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return x if self.tau is None else torch.maximum(x, self.tau.view(1, -1, 1, 1))'''


@dataclass(frozen=True)
class FilterResponseNorm(Op):
    kind: ClassVar[str] = "frn"
    is_module: ClassVar[bool] = True
    spatial: ClassVar[bool] = True
    families: ClassVar[tuple[str, ...]] = ("norm",)  # `policy norm_op = frn`
    signature: ClassVar[Signature | None] = Signature(
        (ArgSpec("eps", float, 1e-5, minimum=None), ArgSpec("act", bool, True))
    )

    eps: float = 1e-5
    act: bool = True

    def includes_act(self) -> bool:
        return self.act

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        return inputs[0]

    def state(self, inputs: Sequence[Shape]) -> list[StateEntry]:
        channels = (inputs[0][0],)
        entries = [StateEntry("weight", channels, value=1.0, scale=True), StateEntry("bias", channels)]
        return entries + [StateEntry("tau", channels)] * self.act

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return 0

    def label(self, channels: bool = True) -> str:
        return "FRN + TLU" if self.act else "FRN"

    def torch_module(self, w: TorchWriter) -> str:
        args = [w.in_channels()]
        if w.attr("eps") != repr(1e-5):
            args.append(f"eps={w.attr('eps')}")
        if not self.act:
            args.append("act=False")
        return f"{CLASS}({', '.join(args)})"

    def torch_helpers(self) -> Mapping[str, str]:
        return {CLASS: SOURCE}

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        """x / sqrt(GlobalAveragePool(x²) + eps), scaled and shifted per channel, then Max with tau."""
        c, h, width = w.shape
        column = w.constant("column", [-1, 1, 1])

        def per_channel(key: str) -> str:
            return w.step(f"{key}_column", "Reshape", [w.weight(key), column], (c, 1, 1), batched=False)

        x = inputs[0]
        square = w.step("square", "Mul", [x, x], (c, h, width))
        nu2 = w.step("nu2", "GlobalAveragePool", [square], (c, 1, 1))
        eps = w.float_constant("eps", [self.eps], (1,))
        rms = w.step("rms", "Sqrt", [w.step("nu2_eps", "Add", [nu2, eps], (c, 1, 1))], (c, 1, 1))
        normed = w.step("normed", "Div", [x, rms], (c, h, width))
        weighted = w.step("weighted", "Mul", [normed, per_channel("weight")], (c, h, width))
        if not self.act:
            w.output("Add", [weighted, per_channel("bias")])
            return
        shifted = w.step("shifted", "Add", [weighted, per_channel("bias")], (c, h, width))
        w.output("Max", [shifted, per_channel("tau")])
