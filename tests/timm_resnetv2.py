"""timm's ResNetV2 (`resnetv2.py`), written out compactly from its source (timm 1.0) without importing timm.

The same module names, order and forward computation as timm's pre-activation `ResNetV2`:
`create_resnetv2_stem` (the 7x7 stem, the deep and tiered ones, BiT's zero-padded `fixed` one),
`PreActBasic`, `PreActBottleneck`, `DownsampleConv`/`DownsampleAvg`, the final norm and a
`ClassifierHead` whose classifier is a 1x1 conv; with its norm-and-activation layers
(`BatchNormAct2d`, `GroupNormAct`, `EvoNorm2dS0`, `FilterResponseNormTlu2d`) and `StdConv2d`.
Drop rates are left out (zero in these models, and identities in eval mode). `ZOO` holds the
constructor arguments of the 20 models of timm's `resnetv2.py` as its registry functions pass them.
tests/test_timm_resnetv2.py checks this file against timm's facts (tests/reference/timm) and the
bundled specs against this file.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn


def make_divisible(v: float, divisor: int = 8) -> int:
    rounded = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * v else rounded


class BatchNormAct(nn.BatchNorm2d):
    def __init__(self, channels: int, apply_act: bool = True):
        super().__init__(channels)
        self.act = nn.ReLU() if apply_act else nn.Identity()

    def forward(self, x):
        return self.act(super().forward(x))


class GroupNormAct(nn.GroupNorm):
    def __init__(self, channels: int, apply_act: bool = True, num_groups: int = 32):
        super().__init__(num_groups, channels, eps=1e-5)
        self.act = nn.ReLU() if apply_act else nn.Identity()

    def forward(self, x):
        return self.act(super().forward(x))


class EvoNormS0(nn.Module):
    def __init__(self, channels: int, apply_act: bool = True, groups: int = 32, eps: float = 1e-5):
        super().__init__()
        self.groups, self.eps = groups, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.v = nn.Parameter(torch.ones(channels)) if apply_act else None

    def forward(self, x):
        if self.v is not None:
            b, c, h, w = x.shape
            std = x.reshape(b, self.groups, c // self.groups, h, w).var(dim=(2, 3, 4), unbiased=False, keepdim=True)
            std = (std + self.eps).sqrt().expand(b, self.groups, c // self.groups, h, w).reshape(b, c, h, w)
            x = x * (x * self.v.view(1, -1, 1, 1)).sigmoid() / std
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class FrnTlu(nn.Module):
    def __init__(self, channels: int, apply_act: bool = True, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.tau = nn.Parameter(torch.zeros(channels)) if apply_act else None

    def forward(self, x):
        x = x * x.square().mean(dim=(2, 3), keepdim=True).add(self.eps).rsqrt()
        x = x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return x if self.tau is None else torch.maximum(x, self.tau.view(1, -1, 1, 1))


class StdConv2d(nn.Conv2d):
    def __init__(self, cin, cout, kernel_size, stride=1, eps=1e-6, **kwargs):
        padding = ((stride - 1) + (kernel_size - 1)) // 2
        super().__init__(cin, cout, kernel_size, stride=stride, padding=padding, bias=False, **kwargs)
        self.eps = eps

    def forward(self, x):
        w = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None, training=True, eps=self.eps)
        return F.conv2d(x, w.reshape_as(self.weight), self.bias, self.stride, self.padding, self.dilation, self.groups)


def plain_conv(cin, cout, kernel_size, stride=1, **kwargs):
    """timm's create_conv2d with its default padding, ((stride - 1) + (kernel_size - 1)) // 2."""
    padding = ((stride - 1) + (kernel_size - 1)) // 2
    return nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False, **kwargs)


class Downsample(nn.Module):
    """DownsampleConv, or DownsampleAvg with `avg`; under pre-activation the norm is an Identity."""

    def __init__(self, cin, cout, stride, conv_layer, avg: bool):
        super().__init__()
        if avg:
            pool = nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)
            self.pool = pool if stride > 1 else nn.Identity()
        self.conv = conv_layer(cin, cout, 1, stride=1 if avg else stride)
        self.norm = nn.Identity()

    def forward(self, x):
        return self.norm(self.conv(self.pool(x) if hasattr(self, "pool") else x))


class PreActBasic(nn.Module):
    def __init__(self, cin, cout, stride, conv_layer, norm_layer, avg_down, first: bool):
        super().__init__()
        needs = first and (stride != 1 or cin != cout)
        self.downsample = Downsample(cin, cout, stride, conv_layer, avg_down) if needs else None
        self.norm1 = norm_layer(cin)
        self.conv1 = conv_layer(cin, cout, 3, stride=stride)
        self.norm2 = norm_layer(cout)
        self.conv2 = conv_layer(cout, cout, 3)
        self.drop_path = nn.Identity()

    def forward(self, x):
        x_preact = self.norm1(x)
        shortcut = x if self.downsample is None else self.downsample(x_preact)
        return self.drop_path(self.conv2(self.norm2(self.conv1(x_preact)))) + shortcut


class PreActBottleneck(nn.Module):
    def __init__(self, cin, cout, stride, conv_layer, norm_layer, avg_down, first: bool):
        super().__init__()
        mid = make_divisible(cout * 0.25)
        self.downsample = Downsample(cin, cout, stride, conv_layer, avg_down) if first else None
        self.norm1 = norm_layer(cin)
        self.conv1 = conv_layer(cin, mid, 1)
        self.norm2 = norm_layer(mid)
        self.conv2 = conv_layer(mid, mid, 3, stride=stride)
        self.norm3 = norm_layer(mid)
        self.conv3 = conv_layer(mid, cout, 1)
        self.drop_path = nn.Identity()

    def forward(self, x):
        x_preact = self.norm1(x)
        shortcut = x if self.downsample is None else self.downsample(x_preact)
        x = self.conv3(self.norm3(self.conv2(self.norm2(self.conv1(x_preact)))))
        return self.drop_path(x) + shortcut


class Stage(nn.Module):
    def __init__(self, block, cin, cout, stride, depth, **kwargs):
        super().__init__()
        blocks = [block(cin, cout, stride, first=True, **kwargs)]
        blocks += [block(cout, cout, 1, first=False, **kwargs) for _ in range(depth - 1)]
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x):
        return self.blocks(x)


class Head(nn.Module):
    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(channels, num_classes, 1, bias=True)

    def forward(self, x):
        return torch.flatten(self.fc(self.global_pool(x)), 1)


class ResNetV2(nn.Module):
    def __init__(
        self, layers, channels=(256, 512, 1024, 2048), num_classes=1000, width_factor=1, stem_type="",
        avg_down=False, basic=False, norm_layer=GroupNormAct, conv_layer=StdConv2d,
    ):  # fmt: skip
        super().__init__()
        wf = width_factor
        stem_chs = make_divisible(64 * wf)
        stem: dict[str, nn.Module] = {}
        if stem_type in ("deep", "tiered"):
            widths = (3 * stem_chs // 8, stem_chs // 2) if stem_type == "tiered" else (stem_chs // 2, stem_chs // 2)
            stem["conv1"] = conv_layer(3, widths[0], 3, stride=2)
            stem["norm1"] = norm_layer(widths[0])
            stem["conv2"] = conv_layer(widths[0], widths[1], 3)
            stem["norm2"] = norm_layer(widths[1])
            stem["conv3"] = conv_layer(widths[1], stem_chs, 3)
        else:
            stem["conv"] = conv_layer(3, stem_chs, 7, stride=2)
        if stem_type == "fixed":
            stem["pad"] = nn.ConstantPad2d(1, 0.0)
            stem["pool"] = nn.MaxPool2d(3, 2, padding=0)
        else:
            stem["pool"] = nn.MaxPool2d(3, 2, padding=1)
        self.stem = nn.Sequential()
        for name, module in stem.items():
            self.stem.add_module(name, module)
        prev = stem_chs
        block = PreActBasic if basic else PreActBottleneck
        self.stages = nn.Sequential()
        for i, (depth, c) in enumerate(zip(layers, channels, strict=True)):
            out = make_divisible(c * wf)
            kwargs = dict(conv_layer=conv_layer, norm_layer=norm_layer, avg_down=avg_down)
            self.stages.add_module(str(i), Stage(block, prev, out, 1 if i == 0 else 2, depth, **kwargs))
            prev = out
        self.norm = norm_layer(prev)
        self.head = Head(prev, num_classes)

    def forward(self, x):
        return self.head(self.norm(self.stages(self.stem(x))))


BN = dict(conv_layer=plain_conv, norm_layer=BatchNormAct)
BASIC = dict(channels=(64, 128, 256, 512), basic=True)
D = dict(stem_type="deep", avg_down=True)
BIT = dict(stem_type="fixed", conv_layer=partial(StdConv2d, eps=1e-8))
L50, L101, L152 = (3, 4, 6, 3), (3, 4, 23, 3), (3, 8, 36, 3)

ZOO: dict[str, dict] = {
    "resnetv2_18": dict(layers=(2, 2, 2, 2), **BASIC, **BN),
    "resnetv2_18d": dict(layers=(2, 2, 2, 2), **BASIC, **BN, **D),
    "resnetv2_34": dict(layers=L50, **BASIC, **BN),
    "resnetv2_34d": dict(layers=L50, **BASIC, **BN, **D),
    "resnetv2_50": dict(layers=L50, **BN),
    "resnetv2_50d": dict(layers=L50, **BN, **D),
    "resnetv2_50t": dict(layers=L50, **BN, stem_type="tiered", avg_down=True),
    "resnetv2_101": dict(layers=L101, **BN),
    "resnetv2_101d": dict(layers=L101, **BN, **D),
    "resnetv2_152": dict(layers=L152, **BN),
    "resnetv2_152d": dict(layers=L152, **BN, **D),
    "resnetv2_50d_gn": dict(layers=L50, conv_layer=plain_conv, norm_layer=GroupNormAct, **D),
    "resnetv2_50d_evos": dict(layers=L50, conv_layer=plain_conv, norm_layer=EvoNormS0, **D),
    "resnetv2_50d_frn": dict(layers=L50, conv_layer=plain_conv, norm_layer=FrnTlu, **D),
    "resnetv2_50x1_bit": dict(layers=L50, width_factor=1, **BIT),
    "resnetv2_50x3_bit": dict(layers=L50, width_factor=3, input=(3, 448, 448), **BIT),
    "resnetv2_101x1_bit": dict(layers=L101, width_factor=1, input=(3, 448, 448), **BIT),
    "resnetv2_101x3_bit": dict(layers=L101, width_factor=3, input=(3, 448, 448), **BIT),
    "resnetv2_152x2_bit": dict(layers=L152, width_factor=2, **BIT),
    "resnetv2_152x4_bit": dict(layers=L152, width_factor=4, input=(3, 480, 480), **BIT),
}


def input_size(name: str) -> tuple[int, int, int]:
    return ZOO[name].get("input", (3, 224, 224))


def create_model(name: str) -> nn.Module:
    """The model `timm.create_model(name)` builds (its layout and computation; not timm's initialisation)."""
    return ResNetV2(**{k: v for k, v in ZOO[name].items() if k != "input"})
