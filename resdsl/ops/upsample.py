"""`upsample`: nearest or bilinear resizing by an integer scale, or to another tensor's size (FPN's top-down path).

`upsample(2)` doubles height and width; `upsample(to=lat4)` resizes to the
height and width of the tensor `lat4` (its second operand), as torchvision's
FeaturePyramidNetwork does with `F.interpolate(x, size=feat.shape[-2:])`. The
modes are PyTorch's: `nearest` (the default) and `bilinear` with
`align_corners=False`, PyTorch's default. It has no parameters and no module
form: the generated code calls `F.interpolate`, in ONNX a `Resize`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ..diagnostics import Span, error
from ..ir.expr import Expr
from ..ir.shape import shape_text
from .base import ArgSpec, OnnxWriter, Op, Shape, ShapeReport, Signature, TensorRef, TorchWriter

MODES = ("nearest", "bilinear")


@dataclass(frozen=True)
class Upsample(Op):
    kind: ClassVar[str] = "upsample"
    spatial: ClassVar[bool] = True
    signature: ClassVar[Signature | None] = Signature(
        (
            ArgSpec("scale", int, None, aliases=("scale_factor",), bound="spatial"),
            ArgSpec("mode", str, "nearest", words=MODES),
            # A tensor of the body whose height and width the output takes: a second operand.
            ArgSpec("to", TensorRef, None, aliases=("size",)),
        ),
        node_args=("to",),
    )

    scale: int = 2
    mode: str = "nearest"
    sized: bool = False  # the output takes operand 1's height and width (`to=NAME`); `scale` is unused

    @classmethod
    def complete(cls, values: dict[str, Any], exprs: dict[str, Expr], span: Span) -> None:
        """Scale 2 unless given; `to=NAME` instead of a scale makes the output that tensor's size."""
        values["sized"] = values.get("to") is not None
        if values["sized"] and values["scale"] is not None:
            raise error(
                "E0102",
                "`upsample` takes a `scale` or a tensor to match (`to`), not both",
                span,
                "both given",
                "`upsample(2)` doubles height and width; `upsample(to=NAME)` takes NAME's",
            )
        if values["scale"] is None:
            values["scale"] = 2

    def operand_count(self) -> int:
        return 2 if self.sized else 1

    def value_operands(self) -> int:
        return 1  # `to=NAME` lends its height and width only

    def problems(self) -> list[str]:
        found = super().problems()
        if self.mode not in MODES:
            found.append(f"mode={self.mode!r} is not one of {', '.join(MODES)}")
        return found

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        channels, h, w = inputs[0]
        if not self.sized:
            return (channels, h * self.scale, w * self.scale)
        if len(inputs[1]) != 3:
            report.error(
                "E0207",
                f"`upsample` resizes to the height and width of a C×H×W tensor, got the flat {shape_text(inputs[1])}",
                "`to` names a flat tensor",
                "name a feature map from before `flatten`",
            )
            return None
        return (channels, inputs[1][1], inputs[1][2])

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return 0  # no weights: torchvision counts convolutions and linear layers only

    def label(self, channels: bool = True) -> str:
        how = "" if self.mode == "nearest" else ", bilinear"
        return ("upsample" if self.sized else f"{self.scale}× upsample") + how

    def _mode(self) -> str:
        return f'mode="{self.mode}"' + (", align_corners=False" if self.mode == "bilinear" else "")

    def torch_call(self, w: TorchWriter, args: list[str]) -> str:
        if self.sized:
            return f"F.interpolate({args[0]}, size={args[1]}.shape[-2:], {self._mode()})"
        scale = w.stored("scale")
        factor = f"{scale}.0" if scale.isdigit() else f"float({scale})"
        return f"F.interpolate({args[0]}, scale_factor={factor}, {self._mode()})"

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        if self.mode == "nearest":  # PyTorch's nearest: source index floor(dst / scale)
            attrs = dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
        else:
            attrs = dict(mode="linear", coordinate_transformation_mode="pytorch_half_pixel")
        channels, h, width = w.inputs[0]
        _, out_h, out_w = w.shape
        whole = out_h % h == 0 and out_w % width == 0
        if whole and self.mode == "nearest":
            # Each value repeated k times in each direction: unsqueeze, expand and reshape, which ONNX
            # shape inference follows to the symbolic batch (Resize's scales would lose it).
            kh, kw = out_h // h, out_w // width
            spread = w.step("spread", "Unsqueeze", [inputs[0], w.constant("axes", [3, 5])], (channels, h, 1, width, 1))
            tiled = w.step(
                "tiled", "Expand", [spread, w.constant("repeat", [1, 1, 1, kh, 1, kw])], (channels, h, kh, width, kw)
            )
            w.output("Reshape", [tiled, w.constant("shape", [0, channels, out_h, out_w])])
            return
        if whole:
            # A whole factor (`upsample(2)`, or `to=` a map k times larger): constant scales, which ONNX
            # shape inference follows, and which map positions as PyTorch's size does (dst / k).
            factors = [1.0, 1.0, float(out_h // h), float(out_w // width)]
            w.output("Resize", [inputs[0], "", w.float_constant("scales", factors, (4,))], **attrs)
            return
        # Any other size: sizes, batch included (the graph's one dynamic dimension; the rest is known).
        shape = w.int_step("shape", "Shape", [inputs[0]], 4)
        batch = w.int_step("batch", "Slice", [shape, w.constant("start", [0]), w.constant("end", [1])], 1)
        sizes = w.int_step("sizes", "Concat", [batch, w.constant("chw", list(w.shape))], 4, axis=0)
        w.output("Resize", [inputs[0], "", "", sizes], **attrs)
