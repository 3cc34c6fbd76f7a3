"""`drop_path`: stochastic depth (Huang et al. 2016), as timm's DropPath.

While training, each sample's whole tensor is kept with probability 1 - p
and then scaled by 1 / (1 - p), or zeroed; at inference it is the identity.
Written on a residual branch before the add, it drops the branch for some
samples of each batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from .base import ArgSpec, OnnxWriter, Op, Range, Shape, ShapeReport, Signature, TorchWriter

CLASS = "DropPath"

# What the generated file defines when a network uses `drop_path`: the module and its functional form. The
# function is private so that no spec name (never `_`-prefixed) can shadow it in a generated forward.
SOURCE = f'''\
def _drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth as timm's drop_path: while training, zero whole samples with probability p, scale the rest."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty([x.shape[0]] + [1] * (x.dim() - 1)).bernoulli_(keep)
    return x * mask.div_(keep)


class {CLASS}(nn.Module):
    """Stochastic depth, laid out as timm's DropPath."""

    def __init__(self, p=0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _drop_path(x, self.p, self.training)'''


@dataclass(frozen=True)
class DropPath(Op):
    kind: ClassVar[str] = "drop_path"
    layout: ClassVar[str] = "any"  # elementwise: either memory layout
    is_module: ClassVar[bool] = True  # a module without state, as timm's `drop_path` in each block
    # In eval mode (or at p = 0) its output is its input, which autograd may keep for the op before (a ReLU):
    # nothing may overwrite it in place.
    saves_output: ClassVar[bool] = True
    signature: ClassVar[Signature | None] = Signature(
        (ArgSpec("p", float, minimum=None, range=Range(0, 1, high_open=True)),)
    )

    p: float

    def problems(self) -> list[str]:
        return super().problems() + ([] if 0 <= self.p < 1 else [f"p={self.p} is not in [0, 1)"])

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        return inputs[0]

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return 0

    def label(self, channels: bool = True) -> str:
        return f"drop path {self.p:g}"

    def torch_module(self, w: TorchWriter) -> str:
        return f"{w.helper(CLASS)}({w.attr('p')})"

    def torch_call(self, w: TorchWriter, args: list[str]) -> str:
        return f"_drop_path({args[0]}, {w.stored('p')}, self.training)"

    def torch_helpers(self) -> Mapping[str, str]:
        return {CLASS: SOURCE}

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        w.output("Identity", inputs)  # inference: every path is kept, unscaled
