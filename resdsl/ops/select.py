"""`select`: branches summed with weights (spec: `select a, b`), the "select" step of selective kernels.

The current tensor holds the weights, one chunk of channels per named
branch: with n branches of C×H×W each, the weights are n·C channels (C×1×1
per branch after a global pool, or C×H×W). The output is Σ_i branch_i ·
chunk_i, as timm's SelectiveKernel computes it:
`(torch.stack([a, b], 1) * w.unflatten(1, (2, -1))).sum(1)` (timm's SplitAttn
reshapes the tensor its pieces were cut from instead of stacking them, which
saves a copy; see docs/benchmarks.md). Usually the
weights come from `softmax(n)`. In ONNX a `Slice` of each chunk, `Mul`s and `Add`s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from ..ir.shape import shape_text
from .base import OnnxWriter, Op, Shape, ShapeReport, TorchWriter


@dataclass(frozen=True)
class Select(Op):
    kind: ClassVar[str] = "select"
    arity: ClassVar[int] = 3

    count: int = 2  # how many branches it weighs (its operands are the weights, then the branches)

    def operand_count(self) -> int:
        return self.count + 1

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        weights, *branches = inputs
        first = branches[0]
        n = len(branches)
        same = all(shape == first for shape in branches)
        fits = (
            same
            and len(weights) == len(first)
            and weights[0] == n * first[0]
            and all(w in (1, b) for w, b in zip(weights[1:], first[1:], strict=True))
        )
        if fits:
            return tuple(first)
        shown = ", ".join(shape_text(shape) for shape in branches)
        if not same:
            message, label = f"`select` weighs branches of one shape, got {shown}", "branches of different shapes"
            help = "bring the branches to one shape (the same convs' widths and strides)"
        else:
            message = (
                f"`select` of {n} branches of {shape_text(first)} needs weights of {n * first[0]} channels "
                f"({n} × {first[0]}, each {shape_text((first[0], 1, 1)) if len(first) == 3 else first[0]} or the "
                f"branches' size), got {shape_text(weights)}"
            )
            label = "weights that do not fit the branches"
            help = f"compute the weights with a 1×1 conv to {n * first[0]} channels after `gap`, then `softmax({n})`"
        report.error("E0233", message, label, help)
        return None

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return 0  # elementwise, as `mul`: torchvision counts convolutions and linear layers only

    def label(self, channels: bool = True) -> str:
        return f"select of {self.count}"

    def torch_call(self, w: TorchWriter, args: list[str]) -> str:
        weights, *branches = args
        return f"(torch.stack([{', '.join(branches)}], 1) * {weights}.unflatten(1, ({self.count}, -1))).sum(1)"

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        weights, *branches = inputs  # two or more branches (lowering refuses fewer)
        width = w.shape[0]
        terms = []
        for i, branch in enumerate(branches):
            start, end = w.constant(f"start{i}", [i * width]), w.constant(f"end{i}", [(i + 1) * width])
            chunk_shape = (width, *w.inputs[0][1:])
            chunk = w.step(f"weight{i}", "Slice", [weights, start, end, w.constant(f"axes{i}", [1])], chunk_shape)
            terms.append(w.step(f"term{i}", "Mul", [branch, chunk], w.shape))
        total = terms[0]
        for i, term in enumerate(terms[1:-1], start=1):
            total = w.step(f"sum{i}", "Add", [total, term], w.shape)
        w.output("Add", [total, terms[-1]])
