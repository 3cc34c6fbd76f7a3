"""`batchnorm`: BatchNorm2d over channels, with running statistics (placed by the norm policy, or written)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from .base import ArgSpec, OnnxWriter, Op, Range, Shape, ShapeReport, Signature, StateEntry, TorchWriter, changed_args

# The state entry a checkpoint may leave out: it counts training updates and means nothing at inference.
BATCHES_TRACKED = "num_batches_tracked"


@dataclass(frozen=True)
class BatchNorm(Op):
    kind: ClassVar[str] = "batchnorm"
    is_module: ClassVar[bool] = True
    spatial: ClassVar[bool] = True
    families: ClassVar[tuple[str, ...]] = ("norm",)
    signature: ClassVar[Signature | None] = Signature(
        (
            ArgSpec("eps", float, 1e-5, minimum=None, range=Range(0, low_open=True)),
            ArgSpec("momentum", float, 0.1, minimum=None, range=Range(0, 1)),
        )
    )

    eps: float = 1e-5
    momentum: float = 0.1

    def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
        return inputs[0]

    def state(self, inputs: Sequence[Shape]) -> list[StateEntry]:
        channels = (inputs[0][0],)
        return [
            StateEntry("weight", channels, value=1.0, scale=True),
            StateEntry("bias", channels),
            StateEntry("running_mean", channels, parameter=False),
            StateEntry("running_var", channels, value=1.0, parameter=False),
            StateEntry(BATCHES_TRACKED, (), dtype="int64", parameter=False, optional=True),
        ]

    def macs(self, inputs: Sequence[Shape], output: Shape) -> int:
        return 0

    def label(self, channels: bool = True) -> str:
        return "BN"

    def torch_module(self, w: TorchWriter) -> str:
        args = [w.in_channels(), *changed_args(w, (("eps", repr(1e-5)), ("momentum", repr(0.1))))]
        return f"nn.BatchNorm2d({', '.join(args)})"

    def onnx(self, w: OnnxWriter, inputs: list[str]) -> None:
        params = [w.weight(k) for k in ("weight", "bias", "running_mean", "running_var")]
        w.output("BatchNormalization", inputs + params, epsilon=self.eps)
