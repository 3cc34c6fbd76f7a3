"""`eca`: efficient channel attention (Wang et al. 2020), laid out as timm's EcaModule.

Global mean → a 1-D convolution across the channels (`conv`, kernel k, no
bias) → sigmoid, multiplied into the input. By default the kernel follows the
channel count C as in timm: t = int(|log2(C) + beta| / gamma), k = t if t is
odd else t + 1, at least 3. A spec writes `se = eca` so that the key is
`...se.conv.weight`, as in timm's ecaresnet models.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ..diagnostics import Span, error
from ..ir.expr import Expr
from .base import ArgSpec, OnnxWriter, Op, Shape, ShapeReport, Signature, StateEntry, TorchWriter, fan_in_bound

CLASS = "EcaModule"

# The module class the generated file defines when a network uses `eca`; its kernel rule is eca_kernel's.
SOURCE = f'''\
class {CLASS}(nn.Module):
    """Efficient channel attention (Wang et al. 2020), laid out as timm's EcaModule."""

    def __init__(self, channels, kernel_size=None, gamma=2.0, beta=1.0):
        super().__init__()
        if kernel_size is None:  # timm's rule: odd, at least 3, growing with log2(channels)
            import math

            t = int(abs(math.log(channels, 2) + beta) / gamma)
            kernel_size = max(t if t % 2 else t + 1, 3)
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x.mean((2, 3)).view(x.shape[0], 1, -1))  # the channels as a 1-D sequence
        return x * torch.sigmoid(y).view(x.shape[0], -1, 1, 1)'''


def eca_kernel(channels: int, gamma: float, beta: float) -> int:
    """timm's adaptive kernel size (the same float arithmetic, so the same size for every channel count)."""
    t = int(abs(math.log(channels, 2) + beta) / gamma)
    return max(t if t % 2 else t + 1, 3)


@dataclass(frozen=True)
class Eca(Op):
    kind: ClassVar[str] = "eca"
    is_module: ClassVar[bool] = True
    families: ClassVar[tuple[str, ...]] = ("attn",)  # timm's attn_layer="eca" (`policy attn = eca`)
    spatial: ClassVar[bool] = True
    signature: ClassVar[Signature | None] = Signature(
        (
            ArgSpec("k", int, None, aliases=("kernel_size",), words=("auto",)),
            ArgSpec("gamma", float, 2.0, minimum=None),
            ArgSpec("beta", float, 1.0, minimum=None),
        )
    )

    k: int | None = None  # None: from the channel count
    gamma: float = 2.0
    beta: float = 1.0

    @classmethod
    def complete(cls, values: dict[str, Any], exprs: dict[str, Expr], span: Span) -> None:
        """`k=auto` is the default; a given kernel must be odd (the output keeps every channel); gamma positive."""
        if values["k"] == "auto":
            values["k"] = None
            exprs.pop("k", None)
        if values["k"] is not None and values["k"] % 2 == 0:
            raise error("E0108", f"`eca` kernel k={values['k']} is even; it must be odd", span, "even kernel")
        if values["gamma"] <= 0:
            raise error("E0108", f"`eca` gamma must be positive, got {values['gamma']}", span, "out of range")

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.k is not None and (type(self.k) is not int or self.k < 1 or self.k % 2 == 0):
            problems.append(f"k={self.k!r} is not an odd positive int or None")
        if not self.gamma > 0:
            problems.append(f"gamma={self.gamma} is not positive")
        return problems

    def kernel(self, channels: int) -> int:
        return eca_kernel(channels, self.gamma, self.beta) if self.k is None else self.k

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        return inputs[0]

    def state(self, inputs: Sequence[Shape]) -> list[StateEntry]:
        shape = (1, 1, self.kernel(inputs[0][0]))
        return [StateEntry("conv.weight", shape, bound=fan_in_bound(shape))]

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        channels = inputs[0][0]  # its 1-D conv: k taps at each of C positions
        return channels * self.kernel(channels)

    def label(self, channels: bool = True) -> str:
        return "ECA" if self.k is None else f"ECA, kernel {self.k}"

    def torch_module(self, w: TorchWriter) -> str:
        args = [w.in_channels()]
        for name, keyword, default in (
            ("k", "kernel_size", "None"),
            ("gamma", "gamma", "2.0"),
            ("beta", "beta", "1.0"),
        ):
            if w.attr(name) != default:
                args.append(f"{keyword}={w.attr(name)}")
        return f"{CLASS}({', '.join(args)})"

    def torch_helpers(self) -> Mapping[str, str]:
        return {CLASS: SOURCE}

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        """x · sigmoid(conv1d(mean over H, W of x, as a sequence of C)), reshaped back to C×1×1."""
        channels = w.shape[0]
        k = self.kernel(channels)
        pooled = w.step("pool", "GlobalAveragePool", inputs, (channels, 1, 1))
        sequence = w.step(
            "sequence", "Reshape", [pooled, w.constant("sequence_shape", [0, 1, channels])], (1, channels)
        )
        conv = w.step(
            "conv",
            "Conv",
            [sequence, w.weight("conv.weight")],
            (1, channels),
            kernel_shape=[k],
            pads=[(k - 1) // 2] * 2,
        )
        gate = w.step("gate", "Sigmoid", [conv], (1, channels))
        scale = w.step("scale", "Reshape", [gate, w.constant("scale_shape", [0, channels, 1, 1])], (channels, 1, 1))
        w.output("Mul", [inputs[0], scale])
