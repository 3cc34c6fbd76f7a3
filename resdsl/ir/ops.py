"""One frozen dataclass per IR op, and the argument signatures of the spec's ops.

An op record holds only concrete values. Where a node came from, its module
path and its shape live on the graph node beside the op (see ir/graph.py).
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Op:
    kind = "op"
    has_params = False  # whether the op owns a module with state (weights or buffers)

    def attrs(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Input(Op):
    kind = "input"


@dataclass(frozen=True)
class Conv(Op):
    kind = "conv"
    has_params = True
    out_channels: int
    kernel: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    dilation: int = 1
    bias: bool = False


@dataclass(frozen=True)
class BatchNorm(Op):
    kind = "batchnorm"
    has_params = True
    eps: float = 1e-5
    momentum: float = 0.1


@dataclass(frozen=True)
class ReLU(Op):
    kind = "relu"


@dataclass(frozen=True)
class MaxPool(Op):
    kind = "maxpool"
    kernel: int
    stride: int
    padding: int = 0
    ceil_mode: bool = False


@dataclass(frozen=True)
class AvgPool(Op):
    kind = "avgpool"
    kernel: int
    stride: int
    padding: int = 0
    ceil_mode: bool = False
    count_include_pad: bool = True


@dataclass(frozen=True)
class GlobalAvgPool(Op):
    kind = "gap"


@dataclass(frozen=True)
class Flatten(Op):
    kind = "flatten"


@dataclass(frozen=True)
class Linear(Op):
    kind = "linear"
    has_params = True
    out_features: int
    bias: bool = True


@dataclass(frozen=True)
class Dropout(Op):
    kind = "dropout"
    p: float = 0.5


@dataclass(frozen=True)
class Add(Op):
    """Residual add: operand 0 is the main path, operand 1 the shortcut."""

    kind = "add"


@dataclass(frozen=True)
class PadShortcut(Op):
    """Option-A shortcut: subsample by `stride`, then zero-pad channels."""

    kind = "pad_shortcut"
    stride: int
    pad_before: int
    pad_after: int


@dataclass(frozen=True)
class SqueezeExcite(Op):
    """Squeeze-and-excitation (Hu et al. 2018), laid out as timm's SEModule.

    Global mean → 1×1 conv `fc1` (with bias) to `se_channels(C)` → ReLU →
    1×1 conv `fc2` (with bias) back to C → sigmoid, multiplied into the input.
    """

    kind = "se"
    has_params = True
    reduction: int = 16
    divisor: int = 8


def se_channels(channels: int, reduction: int, divisor: int) -> int:
    """The squeezed width: timm's `make_divisible(channels / reduction, divisor, round_limit=0)`."""
    return max(divisor, int(channels / reduction + divisor / 2) // divisor * divisor)


# -- signatures of the ops a spec can call ------------------------------------

REQUIRED = object()


@dataclass(frozen=True)
class ArgSpec:
    """One argument of a spec op: its name, aliases, type and default."""

    name: str
    type: type
    default: object = REQUIRED
    aliases: tuple[str, ...] = ()
    minimum: int | None = 1  # smallest allowed value for integers
    words: tuple[str, ...] = ()  # bare words accepted besides values of `type` (conv's `norm=post`)


@dataclass(frozen=True)
class OpSignature:
    make: type
    args: tuple[ArgSpec, ...]
    # Arguments that steer a pass rather than becoming op attributes.
    node_args: tuple[str, ...] = ()

    def lookup(self, name: str) -> ArgSpec | None:
        for spec in self.args:
            if name == spec.name or name in spec.aliases:
                return spec
        return None


def _pool_args() -> tuple[ArgSpec, ...]:
    return (
        ArgSpec("kernel", int, aliases=("k",)),
        ArgSpec("stride", int, None, aliases=("s",)),
        ArgSpec("padding", int, None, aliases=("p",), minimum=0),
        ArgSpec("ceil_mode", bool, False, aliases=("ceil",)),
    )


SIGNATURES: dict[str, OpSignature] = {
    "conv": OpSignature(
        Conv,
        (
            ArgSpec("out_channels", int, aliases=("out",)),
            ArgSpec("kernel", int, aliases=("k",)),
            ArgSpec("stride", int, 1, aliases=("s",)),
            ArgSpec("padding", int, None, aliases=("p",), minimum=0),
            ArgSpec("groups", int, 1),
            ArgSpec("dilation", int, 1, aliases=("d",)),
            ArgSpec("bias", bool, False),
            ArgSpec("norm", bool, True, words=("post",)),
        ),
        node_args=("norm",),
    ),
    "batchnorm": OpSignature(
        BatchNorm,
        (ArgSpec("eps", float, 1e-5, minimum=None), ArgSpec("momentum", float, 0.1, minimum=None)),
    ),
    "relu": OpSignature(ReLU, ()),
    "maxpool": OpSignature(MaxPool, _pool_args()),
    "avgpool": OpSignature(AvgPool, _pool_args() + (ArgSpec("count_include_pad", bool, True, aliases=("count_pad",)),)),
    "gap": OpSignature(GlobalAvgPool, ()),
    "flatten": OpSignature(Flatten, ()),
    "linear": OpSignature(Linear, (ArgSpec("out_features", int, aliases=("out",)), ArgSpec("bias", bool, True))),
    "dropout": OpSignature(Dropout, (ArgSpec("p", float, 0.5, minimum=None),)),
    "se": OpSignature(SqueezeExcite, (ArgSpec("reduction", int, 16), ArgSpec("divisor", int, 8))),
}


def default_padding(kind: str, values: dict) -> int:
    """Padding when a spec gives none: `k//2·dilation` for convs, `(k-1)//2` for pools."""
    if kind == "conv":
        return values["kernel"] // 2 * values["dilation"]
    return (values["kernel"] - 1) // 2
