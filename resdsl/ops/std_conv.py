"""`std_conv`: a 2-D convolution with weight standardisation (Qiao et al. 2019), timm's StdConv2d.

Before each use, every output channel's filter is standardised to zero mean
and unit variance over its inputs and kernel positions (the biased variance,
plus `eps`), as BiT's ResNet-V2 convs do; the state is a plain conv's. Its
arguments are `conv`'s plus `eps` (timm's default 1e-6; BiT uses 1e-8).
`policy conv_op = std_conv(eps=1e-8)` makes every conv the norm policy
manages, and every projection conv, a standardised one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from .base import ArgSpec, OnnxWriter, Signature, TorchWriter
from .conv import Conv

CLASS = "StdConv2d"
EPS = 1e-6  # timm's StdConv2d default

SOURCE = f'''\
class {CLASS}(nn.Conv2d):
    """A conv whose filters are standardised per output channel before use (timm's StdConv2d)."""

    def __init__(self, *args, eps: float = {EPS!r}, **kwargs):
        super().__init__(*args, **kwargs)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = self.weight.reshape(self.out_channels, -1)
        var, mean = torch.var_mean(flat, dim=1, unbiased=False, keepdim=True)
        weight = ((flat - mean) / torch.sqrt(var + self.eps)).reshape_as(self.weight)
        return self._conv_forward(x, weight, self.bias)'''


@dataclass(frozen=True)
class StdConv(Conv):
    kind: ClassVar[str] = "std_conv"
    signature: ClassVar[Signature | None] = Signature(
        (*(Conv.signature.args if Conv.signature else ()), ArgSpec("eps", float, EPS, minimum=None)),
        node_args=("norm",),
    )

    eps: float = EPS

    def problems(self) -> list[str]:
        return super().problems() + ([] if self.eps > 0 else [f"eps={self.eps} is not positive"])

    def label(self, channels: bool = True) -> str:
        return super().label(channels).replace("conv", "std conv", 1)

    def torch_module(self, w: TorchWriter) -> str:
        source = super().torch_module(w).replace("nn.Conv2d(", f"{CLASS}(", 1)
        if w.attr("eps") != repr(EPS):
            source = source[:-1] + f", eps={w.attr('eps')})"
        return source

    def torch_helpers(self) -> Mapping[str, str]:
        return {CLASS: SOURCE}

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        """The filters standardised in the graph, then a Conv: per output channel (a row of the weight
        reshaped to out × rest), subtract the mean and divide by sqrt(biased variance + eps)."""
        out = self.out_channels
        weight = w.weight("weight")
        rest = w.inputs[0][0] // self.groups * self.kernel * self.kernel
        # Tensors of the weights alone, with a leading 1 so that GlobalAveragePool averages each row.
        row, one = (1, out, rest, 1), (1, out, 1, 1)

        def step(label: str, op_type: str, inputs: list[str], shape: tuple[int, ...]) -> str:
            return w.step(label, op_type, inputs, shape, batched=False)

        rows = step("rows", "Reshape", [weight, w.constant("rows_shape", list(row))], row)
        mean = step("mean", "GlobalAveragePool", [rows], one)
        centred = step("centred", "Sub", [rows, mean], row)
        var = step("var", "GlobalAveragePool", [step("square", "Mul", [centred, centred], row)], one)
        eps = w.float_constant("eps", [self.eps], (1,))
        std = step("std", "Sqrt", [step("var_eps", "Add", [var, eps], one)], one)
        standard = step("standard", "Div", [centred, std], row)
        shape = (out, w.inputs[0][0] // self.groups, self.kernel, self.kernel)
        filters_shape = w.constant("filters_shape", list(shape))
        filters = w.step("filters", "Reshape", [standard, filters_shape], shape, batched=False)
        params = [filters] + ([w.weight("bias")] if self.bias else [])
        w.output(
            "Conv",
            inputs + params,
            kernel_shape=[self.kernel] * 2,
            strides=[self.stride] * 2,
            pads=[self.padding] * 4,
            dilations=[self.dilation] * 2,
            group=self.groups,
        )
