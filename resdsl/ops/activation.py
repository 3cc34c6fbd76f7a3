"""What the elementwise activations share: no arguments, no state, no MACs, a torch.nn module and a function.

Each activation (`relu`, `relu6`, `gelu`, `silu`, `hard_swish`, `sigmoid`) is
one subclass in its own file, naming its module and function and writing its
ONNX; this module defines no op kind itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from .base import Op, Shape, ShapeReport, Signature, TorchWriter


@dataclass(frozen=True)
class Activation(Op):
    layout: ClassVar[str] = "any"  # elementwise: either memory layout
    signature: ClassVar[Signature | None] = Signature(())  # called by its name alone
    is_module: ClassVar[bool] = True  # timm holds activations as modules (`act1`), so fuse lists can name them
    families: ClassVar[tuple[str, ...]] = ("act",)  # a value of `policy act`
    module: ClassVar[str]  # the torch.nn class (`ReLU6`)
    function: ClassVar[str]  # its functional form (`F.relu6`)
    in_place: ClassVar[bool] = False  # whether the module takes `inplace=True` (then used where autograd allows)
    title: ClassVar[str]  # the diagram label

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        return inputs[0]

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return 0  # torchvision counts convolutions and linear layers only

    def label(self, channels: bool = True) -> str:
        return self.title

    def torch_module(self, w: TorchWriter) -> str:
        if self.in_place and w.inplace():
            return f"nn.{self.module}(inplace=True)"
        return f"nn.{self.module}()"

    def torch_call(self, w: TorchWriter, args: list[str]) -> str:
        return f"{self.function}({args[0]})"
