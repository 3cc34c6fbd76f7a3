"""`linear`: a fully connected layer, PyTorch's nn.Linear.

On a flat input it is the classifier; on a channels-last feature map
(after `channels_last`) it maps the C channels at every position, as
ConvNeXt's Mlp does: the same arithmetic as a 1×1 conv with bias, with
nn.Linear's (out, in) weight. The shapes pass requires one of the two (E0207).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from ..ir.shape import shape_text
from .base import ArgSpec, OnnxWriter, Op, Shape, ShapeReport, Signature, StateEntry, TorchWriter, fan_in_bound


@dataclass(frozen=True)
class Linear(Op):
    kind: ClassVar[str] = "linear"
    is_module: ClassVar[bool] = True
    layout: ClassVar[str] = "last"  # a feature map must be channels-last: nn.Linear maps the last dimension
    signature: ClassVar[Signature | None] = Signature(
        (ArgSpec("out_features", int, aliases=("out",), bound="channels"), ArgSpec("bias", bool, True))
    )

    out_features: int
    bias: bool = True

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        if len(inputs[0]) not in (1, 3):
            report.error(
                "E0207",
                f"`{report.name}` needs a flat input or a feature map, got {shape_text(inputs[0])}",
                "input has the wrong rank",
            )
            return None
        return (self.out_features, *inputs[0][1:])

    def state(self, inputs: Sequence[Shape]) -> list[StateEntry]:
        weight = (self.out_features, inputs[0][0])
        bound = fan_in_bound(weight)
        entries = [StateEntry("weight", weight, bound=bound)]
        if self.bias:
            entries.append(StateEntry("bias", (self.out_features,), bound=bound))
        return entries

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return math.prod(output) * inputs[0][0]  # every output element, one MAC per input channel

    def label(self, channels: bool = True) -> str:
        return f"linear, {self.out_features}"

    def torch_module(self, w: TorchWriter) -> str:
        bias = "" if w.attr("bias") == "True" else f", bias={w.attr('bias')}"
        return f"nn.Linear({w.in_channels()}, {w.attr('out_features')}{bias})"

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        """Gemm on a flat input; on a feature map (N×C×H×W in the graph) a 1×1 Conv whose filter is the
        (out, in) weight reshaped to (out, in, 1, 1)."""
        weight = w.weight("weight")  # the initializers in state order: weight, then bias
        bias = [w.weight("bias")] if self.bias else []
        if len(w.shape) == 1:
            w.output("Gemm", [*inputs, weight, *bias], transB=1)
            return
        filt_shape = (self.out_features, w.inputs[0][0], 1, 1)
        reshape = [weight, w.constant("filter_shape", [0, -1, 1, 1])]
        filt = w.step("filter", "Reshape", reshape, filt_shape, batched=False)
        w.output("Conv", [*inputs, filt, *bias], kernel_shape=[1, 1])
