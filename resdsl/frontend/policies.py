"""The policies a network declares (`policy NAME = VALUE`) and `--set` overrides' values.

Lowering reads a network's settings through these; the values themselves
are applied by the passes (norm placement, shortcuts, dilation, zero-init).
"""

from __future__ import annotations

import math
import re

from ..diagnostics import error
from ..ir.expr import Value
from ..ir.policies import (
    INITS,
    NORM_NAMES,
    PROJECTION_NAMES,
    PROJECTIONS,
    SHORTCUT_MODULES,
    SHORTCUTS,
    OpChoice,
    Policies,
)
from ..ops import KINDS

# Numbers on the command line are written as in a spec: ASCII digits only (Python's int() and float()
# also take other scripts' digits, `inf` and `nan`, none of which a spec could write).
_DIGITS = re.compile(r"[0-9]+")
_INT = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def family(name: str) -> tuple[str, ...]:
    """The op kinds of a family, sorted."""
    return tuple(sorted(kind for kind, op in KINDS.items() if name in op.families))


# Spellings of the norm orders: each maps to one of ir.policies.NORM_ORDERS.
NORM_ORDERS = {
    "post": "post",
    "original": "post",
    "bn_after_add": "bn_after_add",
    "relu_before_add": "relu_before_add",
    "relu_preact": "relu_preact",
    "pre": "pre",
    "full_preact": "pre",
    "none": "none",
}
# `output_stride` also takes any other power of two; these are the usual ones.
OUTPUT_STRIDES = ("none", "8", "16", "32")
POLICY_VALUES = {
    "norm": tuple(NORM_ORDERS),
    "shortcut": SHORTCUTS,
    "projection": PROJECTIONS,  # avgpool: ResNet-D's 2×2 average pool before a stride-1 projection
    "output_stride": OUTPUT_STRIDES,  # dilation instead of stride past this total stride
    "zero_init_last": ("false", "true"),  # the last BatchNorm of each residual branch starts with γ = 0
    # What the norm policy places: any op of the family (batchnorm, groupnorm, ...; relu, gelu, ...).
    "norm_op": family("norm"),
    "act": family("act"),
    "attn": ("none", *family("attn")),  # attention at the end of each residual branch (se, eca)
    "aa": ("none", *family("aa")),  # anti-aliasing after each strided branch conv (blurpool, avgpool)
    "down_kernel": ("1", "3"),  # a strided projection conv's kernel; any odd size
    "norm_name": NORM_NAMES,  # placed norms named bn2 (torchvision, timm's resnet.py) or norm2 (timm's resnetv2.py)
    "final_norm": ("true", "false"),  # under `pre`: a norm and activation after the last add, or not (CIFAR's)
    "projection_names": PROJECTION_NAMES,  # downsample.0, .1 or downsample.conv, .norm (timm's resnetv2.py)
    "shortcut_module": SHORTCUT_MODULES,  # layer2.0.downsample.0 or layer2.0.shortcut.0 (CIFAR ResNets)
    "init": INITS,  # He-normal convs, or timm's ConvNeXt init (truncated normal, std 0.02)
    "conv_op": family("conv"),  # std_conv: weight-standardised (BiT); a spec's `norm=false` convs stay
}
OP_POLICIES = ("norm_op", "act", "attn", "aa", "conv_op")  # policies whose value is an op, maybe with arguments


def policy_allows(name: str, value: str) -> bool:
    """Whether `value` is one of policy `name`'s values."""
    if name == "output_stride" and _DIGITS.fullmatch(value):
        stride = int(value)
        return stride >= 1 and stride & (stride - 1) == 0
    if name == "down_kernel" and _DIGITS.fullmatch(value):
        return int(value) % 2 == 1
    return value in POLICY_VALUES[name]


# What people call a policy value, when it is not its name here: "pre-activation" means full pre-activation.
_MEANT = {"norm": {"preact": "pre", "pre_act": "pre", "preactivation": "pre", "pre_activation": "pre", "v2": "pre"}}


def closest_value(name: str, value: str) -> str | None:
    """The value of policy `name` that `value` most likely means, if any."""
    import difflib

    if value in _MEANT.get(name, {}):
        return _MEANT[name][value]
    close = difflib.get_close_matches(value, list(POLICY_VALUES[name]), n=1)
    return close[0] if close else None


def policy_choices(name: str) -> str:
    """The help line that lists policy `name`'s values."""
    if name == "output_stride":
        return "choose a power of two such as 8 or 16, or none"
    if name == "down_kernel":
        return "choose an odd kernel size such as 1 or 3"
    return "choose one of " + ", ".join(POLICY_VALUES[name])


def resolve(chosen: dict[str, str], ops: dict[str, OpChoice]) -> Policies:
    """The policies a network ends up with: defaults, overridden by `chosen` (name → checked spec text)
    and, for the policies that choose an op, by `ops` (checked op choices, arguments included)."""
    values: dict[str, object] = {}
    if "norm" in chosen:
        values["norm"] = NORM_ORDERS[chosen["norm"]]
    for name in ("shortcut", "projection", "norm_name", "projection_names", "shortcut_module", "init"):
        if name in chosen:
            values[name] = chosen[name]
    for name in OP_POLICIES:
        if name in chosen:
            values[name] = None if chosen[name] == "none" else ops.get(name, OpChoice(chosen[name]))
    if "down_kernel" in chosen:
        values["down_kernel"] = int(chosen["down_kernel"])
    if "output_stride" in chosen:
        values["output_stride"] = None if chosen["output_stride"] == "none" else int(chosen["output_stride"])
    if "final_norm" in chosen:
        values["final_norm"] = chosen["final_norm"] == "true"
    if "zero_init_last" in chosen:
        values["zero_init_last"] = chosen["zero_init_last"] == "true"
    return Policies(**values)  # type: ignore[arg-type]  # each value checked by policy_allows


def parse_int(key: str, text: str) -> int:
    """A positive integer given as `--set KEY=TEXT`."""
    if not _INT.fullmatch(text.strip()):
        raise error("E0301", f"--set {key}={text}: expected an integer")
    value = int(text)
    if value < 1:
        raise error("E0301", f"--set {key}={text}: must be at least 1")
    return value


def parse_number(key: str, text: str) -> Value:
    """A number or boolean given as `--set KEY=TEXT`, for a network's `let`."""
    if text in ("true", "false"):
        return text == "true"
    if _INT.fullmatch(text):
        if len(text.lstrip("+-")) <= 18:  # as in a spec: no integer needs more digits
            return int(text)
    elif _NUMBER.fullmatch(text):
        value = float(text)
        if math.isfinite(value) and abs(value) <= 10**18:
            return value
    else:
        raise error("E0301", f"--set {key}={text}: expected a number or true/false")
    raise error("E0301", f"--set {key}={text}: number too large")


def parse_shape(text: str) -> tuple[int, int, int]:
    """The input shape given as `--set input=CxHxW`."""
    parts = text.lower().split("x")
    shape = tuple(int(p) for p in parts) if all(_DIGITS.fullmatch(p) for p in parts) else ()
    if len(shape) != 3 or min(shape) < 1:
        raise error("E0301", f"--set input={text}: expected CxHxW such as 3x224x224")
    return shape  # type: ignore[return-value]
