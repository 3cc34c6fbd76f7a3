"""`maxpool`, `avgpool` and `gap` (global average pooling)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ..diagnostics import Span
from ..ir.expr import BinOp, Expr, Num
from .base import ArgSpec, OnnxWriter, Op, Shape, ShapeReport, Signature, TorchWriter, changed_args
from .window import pool_pads, window_out


def _pool_args() -> tuple[ArgSpec, ...]:
    return (
        ArgSpec("kernel", int, aliases=("k",), bound="spatial"),
        ArgSpec("stride", int, None, aliases=("s",), bound="spatial"),
        ArgSpec("padding", int, None, aliases=("p",), minimum=0, bound="spatial"),
        ArgSpec("ceil_mode", bool, False, aliases=("ceil",)),
    )


@dataclass(frozen=True)
class _Pool(Op):
    """What max and average pooling share: a window, its defaults and its shape rule."""

    spatial: ClassVar[bool] = True
    is_module: ClassVar[bool] = True

    kernel: int
    stride: int
    padding: int = 0
    ceil_mode: bool = False

    def downsampling(self) -> int:
        return self.stride

    @classmethod
    def complete(cls, values: dict[str, Any], exprs: dict[str, Expr], span: Span) -> None:
        """Padding `(kernel - 1) // 2` and stride = kernel unless given."""
        if values["padding"] is None:
            values["padding"] = (values["kernel"] - 1) // 2
            if "kernel" in exprs:
                exprs["padding"] = BinOp("//", BinOp("-", exprs["kernel"], Num(1, span), span), Num(2, span), span)
        if values["stride"] is None:
            values["stride"] = values["kernel"]
            if "kernel" in exprs:
                exprs["stride"] = exprs["kernel"]

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        if self.padding * 2 > self.kernel:
            report.error(
                "E0208",
                f"`{report.name}`: padding {self.padding} is more than half the kernel {self.kernel}",
                "too much padding",
                "pools may pad at most kernel // 2",
            )
            return None
        return window_out(self, inputs[0], inputs[0][0], 1, self.ceil_mode, report)

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return 0

    def _module(self, cls: str, w: TorchWriter) -> str:
        """The module form (inside an nn.Sequential): arguments past kernel and stride only where not default."""
        defaults = [("padding", "0"), ("ceil_mode", "False"), ("count_include_pad", "True")]
        args = [w.attr("kernel"), w.attr("stride"), *changed_args(w, [d for d in defaults if hasattr(self, d[0])])]
        return f"{cls}({', '.join(args)})"

    def _label(self, name: str) -> str:
        return f"{self.kernel}×{self.kernel} {name}" + (f", stride {self.stride}" if self.stride > 1 else "")


@dataclass(frozen=True)
class MaxPool(_Pool):
    kind: ClassVar[str] = "maxpool"
    signature: ClassVar[Signature | None] = Signature(_pool_args())

    def label(self, channels: bool = True) -> str:
        return self._label("max-pool")

    def torch_module(self, w: TorchWriter) -> str:
        return self._module("nn.MaxPool2d", w)

    def torch_call(self, w: TorchWriter, args: list[str]) -> str:
        ceil = w.stored("ceil_mode")
        ceil = "" if ceil == "False" else f", ceil_mode={ceil}"
        return f"F.max_pool2d({args[0]}, {w.stored('kernel')}, {w.stored('stride')}, {w.stored('padding')}{ceil})"

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        pads, _ = pool_pads(self.kernel, self.stride, self.padding, w.inputs[0], w.shape)
        w.output("MaxPool", inputs, kernel_shape=[self.kernel] * 2, strides=[self.stride] * 2, pads=pads)


@dataclass(frozen=True)
class AvgPool(_Pool):
    kind: ClassVar[str] = "avgpool"
    families: ClassVar[tuple[str, ...]] = ("aa",)  # timm's aa_layer=nn.AvgPool2d: AvgPool2d(stride)
    signature: ClassVar[Signature | None] = Signature(
        _pool_args() + (ArgSpec("count_include_pad", bool, True, aliases=("count_pad",)),)
    )

    count_include_pad: bool = True

    def label(self, channels: bool = True) -> str:
        return self._label("avg-pool")

    def torch_module(self, w: TorchWriter) -> str:
        return self._module("nn.AvgPool2d", w)

    def torch_call(self, w: TorchWriter, args: list[str]) -> str:
        return (
            f"F.avg_pool2d({args[0]}, {w.stored('kernel')}, {w.stored('stride')}, {w.stored('padding')}, "
            f"ceil_mode={w.stored('ceil_mode')}, count_include_pad={w.stored('count_include_pad')})"
        )

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        pads, extra = pool_pads(self.kernel, self.stride, self.padding, w.inputs[0], w.shape)
        count_pad = self.count_include_pad
        if count_pad and extra and self.padding:
            # PyTorch counts the declared padding but not the ceil_mode overhang:
            # pad with zeros explicitly, then average over what lies inside.
            p = self.padding
            c, h, width = w.inputs[0]
            pad_values = w.constant("pads", [0, 0, p, p, 0, 0, p, p])
            padded = w.step("padded", "Pad", [inputs[0], pad_values], (c, h + 2 * p, width + 2 * p), mode="constant")
            inputs, pads, count_pad = [padded], [0, 0, pads[2] - p, pads[3] - p], False
        elif extra:
            count_pad = False  # without declared padding, only the overhang is padding: never counted
        w.output(
            "AveragePool",
            inputs,
            kernel_shape=[self.kernel] * 2,
            strides=[self.stride] * 2,
            pads=pads,
            count_include_pad=int(count_pad),
        )


@dataclass(frozen=True)
class GlobalAvgPool(Op):
    kind: ClassVar[str] = "gap"
    spatial: ClassVar[bool] = True
    is_module: ClassVar[bool] = True
    signature: ClassVar[Signature | None] = Signature(())

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        return (inputs[0][0], 1, 1)

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return 0

    def label(self, channels: bool = True) -> str:
        return "global avg-pool"

    def torch_module(self, w: TorchWriter) -> str:
        return "nn.AdaptiveAvgPool2d(1)"

    def torch_call(self, w: TorchWriter, args: list[str]) -> str:
        return f"F.adaptive_avg_pool2d({args[0]}, 1)"

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        w.output("GlobalAveragePool", inputs)
