"""The network-wide policies, resolved: where norms go, how shortcuts are made, and the rest."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

NORM_ORDERS = ("post", "bn_after_add", "relu_before_add", "relu_preact", "pre", "none")
SHORTCUTS = ("A", "B", "C", "drop", "none")
PROJECTIONS = ("conv", "avgpool")
NORM_NAMES = ("bn", "norm")  # the word a placed norm is named with: `bn2` (torchvision) or `norm2` (timm's v2)
# `downsample.0`, `.1` (nn.Sequential) or `downsample.conv`, `.norm`: `named` builds the projection first in
# its block (timm's resnetv2.py), `named_last` after the branch (regnet.py).
PROJECTION_NAMES = ("numbered", "named", "named_last")
# The attribute of a block's projection: `downsample` (torchvision, timm) or `shortcut` (the widely copied CIFAR
# ResNets of pytorch-cifar, whose checkpoints hold `layer2.0.shortcut.0.weight`).
SHORTCUT_MODULES = ("downsample", "shortcut")
# How `init_weights()` starts the weights: He-normal convs (torchvision, timm's ResNets) or a normal of
# standard deviation 0.02 truncated at ±2 for convs and linear layers, biases zero (timm's ConvNeXt).
INITS = ("he", "trunc_normal")


@dataclass(frozen=True)
class OpChoice:
    """An op a policy places, with the arguments the spec gave it (`se(rd_ratio=0.25)`)."""

    kind: str
    args: tuple[tuple[str, int | float | bool], ...] = ()

    def __str__(self) -> str:
        if not self.args:
            return self.kind
        return f"{self.kind}({', '.join(f'{k}={_text(v)}' for k, v in self.args)})"


@dataclass(frozen=True)
class Policies:
    norm: str = "post"  # one of NORM_ORDERS (He et al. 2016, Figure 4; `none` places nothing)
    shortcut: str = "B"  # one of SHORTCUTS (He et al. 2015, §3.3; `drop`: no add where shapes differ; `none`: plain)
    projection: str = "conv"  # how B/C projections downsample: a strided 1×1 conv, or avgpool first (ResNet-D)
    output_stride: int | None = None  # past this total stride, blocks dilate instead (None: never)
    zero_init_last: bool = False  # the last BatchNorm of each residual branch starts with γ = 0
    norm_op: OpChoice = OpChoice("batchnorm")  # the norm the norm policy places (an op of family "norm")
    act: OpChoice = OpChoice("relu")  # the activation it places (family "act")
    attn: OpChoice | None = None  # attention each residual branch ends with (family "attn": se, eca)
    aa: OpChoice | None = None  # anti-aliasing where a branch's conv strides (family "aa": blurpool, avgpool)
    down_kernel: int = 1  # the kernel of a strided projection conv (timm's down_kernel_size)
    norm_name: str = "bn"  # one of NORM_NAMES: `conv2`'s norm is `bn2` or `norm2`, the final one `bn_final` or `norm`
    final_norm: bool = True  # `pre` ends with one norm and activation after the last add
    projection_names: str = "numbered"  # one of PROJECTION_NAMES
    shortcut_module: str = "downsample"  # one of SHORTCUT_MODULES: a projection's attribute in its block
    init: str = "he"  # one of INITS: how the generated init_weights() starts convs and linear layers
    conv_op: OpChoice = OpChoice("conv")  # the conv of the convs the norm policy manages and of projections

    def conv(self, conv: Any) -> Any:
        """`conv` (a Conv op) as the `conv_op` policy's kind, with the policy's arguments."""
        if self.conv_op.kind == conv.kind:
            return conv
        from ..ops import KINDS  # the ops import this module

        return KINDS[self.conv_op.kind](**{**conv.attrs(), **dict(self.conv_op.args)})

    def text(self) -> str:
        """`norm=post, shortcut=B`, plus every other policy that differs from its default, by name."""
        defaults = Policies()
        shown = []
        for f in sorted(fields(self), key=lambda f: f.name):
            value = getattr(self, f.name)
            if f.name in ("norm", "shortcut") or value != getattr(defaults, f.name):
                shown.append(f"{f.name}={_text(value)}")
        return ", ".join(shown)


def _text(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "none" if value is None else str(value)
