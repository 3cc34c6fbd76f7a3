"""`se`: squeeze-and-excitation (Hu et al. 2018), laid out as timm's SEModule.

Global mean → 1×1 conv `fc1` (with bias) to `se_channels(C)` → ReLU → 1×1
conv `fc2` (with bias) back to C → sigmoid, multiplied into the input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from .base import ArgSpec, OnnxWriter, Op, Shape, ShapeReport, Signature, StateEntry, TorchWriter, fan_in_bound

CLASS = "SqueezeExcite"

# The module class the generated file defines when a network uses `se`; its width rule is se_channels.
SOURCE = f'''\
class {CLASS}(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018), laid out as timm's SEModule."""

    def __init__(self, channels, reduction=16, divisor=8):
        super().__init__()
        squeezed = max(divisor, int(channels / reduction + divisor / 2) // divisor * divisor)
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))
        return x * torch.sigmoid(self.fc2(scale))'''


def se_channels(channels: int, reduction: int, divisor: int) -> int:
    """The squeezed width: timm's `make_divisible(channels / reduction, divisor, round_limit=0)`."""
    return max(divisor, int(channels / reduction + divisor / 2) // divisor * divisor)


@dataclass(frozen=True)
class SqueezeExcite(Op):
    kind: ClassVar[str] = "se"
    is_module: ClassVar[bool] = True
    families: ClassVar[tuple[str, ...]] = ("attn",)
    spatial: ClassVar[bool] = True
    signature: ClassVar[Signature | None] = Signature((ArgSpec("reduction", int, 16), ArgSpec("divisor", int, 8)))

    reduction: int = 16
    divisor: int = 8

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        return inputs[0]

    def state(self, inputs: Sequence[Shape]) -> list[StateEntry]:
        channels = inputs[0][0]
        squeezed = se_channels(channels, self.reduction, self.divisor)
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
        return 2 * channels * se_channels(channels, self.reduction, self.divisor)

    def label(self, channels: bool = True) -> str:
        return f"squeeze-excite, reduction {self.reduction}"

    def torch_module(self, w: TorchWriter) -> str:
        args = [w.in_channels()]
        for name, default in (("reduction", "16"), ("divisor", "8")):
            if w.attr(name) != default:
                args.append(f"{name}={w.attr(name)}")
        return f"{CLASS}({', '.join(args)})"

    def torch_helpers(self) -> Mapping[str, str]:
        return {CLASS: SOURCE}

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        """x · sigmoid(fc2(relu(fc1(mean over H, W of x)))), fc1 and fc2 1×1 convs with bias."""
        channels = w.shape[0]
        squeezed = se_channels(channels, self.reduction, self.divisor)
        conv: dict[str, Any] = {"kernel_shape": [1, 1]}
        pooled = w.step("pool", "GlobalAveragePool", inputs, (channels, 1, 1))
        fc1 = w.step("fc1", "Conv", [pooled, w.weight("fc1.weight"), w.weight("fc1.bias")], (squeezed, 1, 1), **conv)
        relu = w.step("relu", "Relu", [fc1], (squeezed, 1, 1))
        fc2 = w.step("fc2", "Conv", [relu, w.weight("fc2.weight"), w.weight("fc2.bias")], (channels, 1, 1), **conv)
        gate = w.step("gate", "Sigmoid", [fc2], (channels, 1, 1))
        w.output("Mul", [inputs[0], gate])
