"""`layernorm`: layer normalization over the channels (Ba et al. 2016), at every position.

Each sample's C channels at one position are normalized to zero mean and
unit variance (biased, plus `eps`), then scaled and shifted per channel
(`weight`, `bias`). It reads either memory layout: on a channels-first
feature map it is timm's LayerNorm2d (which permutes to channels-last and
back around F.layer_norm), on a channels-last one or a flat vector it is
nn.LayerNorm itself, as ConvNeXt's blocks run it between their permutes.
The default `eps` is timm's (and ConvNeXt's), 1e-6; nn.LayerNorm's is 1e-5.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from .base import ArgSpec, OnnxWriter, Op, Range, Shape, ShapeReport, Signature, StateEntry, TorchWriter

CLASS = "LayerNorm2d"

SOURCE = f'''\
class {CLASS}(nn.LayerNorm):
    """LayerNorm over the channels of an N×C×H×W feature map (timm's LayerNorm2d)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)'''

REDUCE_AXES_INPUT_OPSET = 18  # ReduceMean takes its axes as an input from opset 18, an attribute before


@dataclass(frozen=True)
class LayerNorm(Op):
    kind: ClassVar[str] = "layernorm"
    is_module: ClassVar[bool] = True
    layout: ClassVar[str] = "any"  # per position, over the channels: either layout, and flat vectors
    layout_module: ClassVar[bool] = True  # LayerNorm2d on N×C×H×W, nn.LayerNorm on N×H×W×C or flat
    families: ClassVar[tuple[str, ...]] = ("norm",)  # `policy norm_op = layernorm`: LayerNorm2d where BN would go
    signature: ClassVar[Signature | None] = Signature(
        (ArgSpec("eps", float, 1e-6, minimum=None, range=Range(0, low_open=True)),)
    )

    eps: float = 1e-6

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        return inputs[0]

    def state(self, inputs: Sequence[Shape]) -> list[StateEntry]:
        channels = (inputs[0][0],)
        return [StateEntry("weight", channels, value=1.0, scale=True), StateEntry("bias", channels)]

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return 0

    def label(self, channels: bool = True) -> str:
        return "LayerNorm"

    def torch_module(self, w: TorchWriter) -> str:
        args = [w.in_channels()]
        if w.attr("eps") != repr(1e-5):  # nn.LayerNorm's default, which LayerNorm2d inherits
            args.append(f"eps={w.attr('eps')}")
        spatial_first = not w.channels_last() and w.rank() == 3
        return f"{w.helper(CLASS) if spatial_first else 'nn.LayerNorm'}({', '.join(args)})"

    def torch_helpers(self) -> Mapping[str, str]:
        return {CLASS: SOURCE}

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        """Over axis 1 of the N×C(×H×W) tensor (the IR's layout, whatever PyTorch's): the mean, the
        biased variance, then the per-channel scale and shift."""
        shape = w.shape
        stat = (1, *shape[1:])
        if w.opset >= REDUCE_AXES_INPUT_OPSET:
            axes = w.constant("axes", [1])

            def mean(label: str, x: str) -> str:
                return w.step(label, "ReduceMean", [x, axes], stat, keepdims=1)
        else:

            def mean(label: str, x: str) -> str:
                return w.step(label, "ReduceMean", [x], stat, axes=[1], keepdims=1)

        x = inputs[0]
        centred = w.step("centred", "Sub", [x, mean("mean", x)], shape)
        var = mean("var", w.step("square", "Mul", [centred, centred], shape))
        eps = w.float_constant("eps", [self.eps], (1,))
        std = w.step("std", "Sqrt", [w.step("var_eps", "Add", [var, eps], stat)], stat)
        normed = w.step("normed", "Div", [centred, std], shape)
        column = [-1] + [1] * (len(shape) - 1)

        def per_channel(key: str) -> str:
            if len(shape) == 1:
                return w.weight(key)
            reshape = [w.weight(key), w.constant(f"{key}_shape", column)]
            return w.step(f"{key}_column", "Reshape", reshape, (shape[0], *[1] * (len(shape) - 1)), batched=False)

        weighted = w.step("weighted", "Mul", [normed, per_channel("weight")], shape)
        w.output("Add", [weighted, per_channel("bias")])
