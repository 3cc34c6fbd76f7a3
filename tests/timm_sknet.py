"""A compact PyTorch SK-ResNet, written from timm's `sknet.py` (`SelectiveKernelBasic`,
`SelectiveKernelBottleneck`), `selective_kernel.py` (`SelectiveKernel`, `SelectiveKernelAttn`), in the
ResNet container of tests/timm_resnet.py (timm's `ResNet`, which sknet.py builds on), for checking the
SK-ResNet specs.

timm's module names and order: the stem `conv1`, `bn1` (7×7, stride 2, then a 3×3 max pool), stages
`layer1` … `layer4` of blocks `0`, `1`, …, then `fc`. The selective kernel (a block's `conv1` in
SelectiveKernelBasic, its `conv2` in SelectiveKernelBottleneck) holds `paths.0`, `paths.1`, each a
ConvNormAct (`conv`, `bn`) with ReLU: both 3×3 (keep_3x3), the second dilated 2 for timm's default 5×5,
padding ((stride − 1) + dilation · 2) // 2, groups min(out, cardinality). With split_input each path reads
its own in_channels // 2 of the input; without it both read all of it. `attn` (`fc_reduce`, `bn`,
`fc_select`) squeezes the sum of the paths to make_divisible(out · rd_ratio, rd_divisor) channels (at
least rd_divisor) and weighs the paths by a softmax across them. The other convs are ConvNormAct with
no activation on the last one; `downsample` (`0` a 1×1 strided conv, `1` its BN) is the block's last
module, and the ReLU follows the add.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from timm_resnet import ResNet, make_divisible
from torch import nn


class ConvNormAct(nn.Module):
    """timm's ConvNormAct with BatchNormAct2d: keys `conv.weight`, `bn.*`; the ReLU belongs to `bn`."""

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, dilation: int = 1, groups: int = 1,
                 act: bool = True):  # fmt: skip
        super().__init__()
        padding = ((stride - 1) + dilation * (k - 1)) // 2  # timm's get_padding
        self.conv = nn.Conv2d(cin, cout, k, stride, padding, dilation, groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.ReLU() if act else nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class SelectiveKernelAttn(nn.Module):
    def __init__(self, channels: int, num_paths: int, attn_channels: int):
        super().__init__()
        self.num_paths = num_paths
        self.fc_reduce = nn.Conv2d(channels, attn_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(attn_channels)
        self.act = nn.ReLU()
        self.fc_select = nn.Conv2d(attn_channels, channels * num_paths, 1, bias=False)

    def forward(self, x):  # x: (B, paths, C, H, W)
        x = self.fc_select(self.act(self.bn(self.fc_reduce(x.sum(1).mean((2, 3), keepdim=True)))))
        b, c, h, w = x.shape
        return torch.softmax(x.view(b, self.num_paths, c // self.num_paths, h, w), dim=1)


class SelectiveKernel(nn.Module):
    """timm's SelectiveKernel with its default kernel_size [3, 5] and keep_3x3: two 3×3 paths, dilations 1, 2."""

    def __init__(self, cin: int, cout: int, stride: int = 1, groups: int = 1, rd_ratio: float = 1 / 16,
                 rd_divisor: int = 8, split_input: bool = True):  # fmt: skip
        super().__init__()
        dilations = [(k - 1) // 2 for k in (3, 5)]  # keep_3x3: 5×5 becomes 3×3 dilated 2
        self.num_paths = len(dilations)
        self.in_channels = cin
        self.split_input = split_input
        path_in = cin // self.num_paths if split_input else cin
        groups = min(cout, groups)
        self.paths = nn.ModuleList(ConvNormAct(path_in, cout, 3, stride, d, groups) for d in dilations)
        self.attn = SelectiveKernelAttn(cout, self.num_paths, make_divisible(cout * rd_ratio, rd_divisor))

    def forward(self, x):
        if self.split_input:
            inputs = torch.split(x, self.in_channels // self.num_paths, 1)
        else:
            inputs = [x] * self.num_paths
        x = torch.stack([path(xi) for path, xi in zip(self.paths, inputs, strict=True)], dim=1)
        return (x * self.attn(x)).sum(1)


class SelectiveKernelBasic(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride=1, downsample=None, cardinality=1, base_width=64, sk=None, **_):
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = SelectiveKernel(cin, planes, stride, **(sk or {}))
        self.conv2 = ConvNormAct(planes, cout, 3, act=False)
        self.act = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.act(self.conv2(self.conv1(x)) + shortcut)


class SelectiveKernelBottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride=1, downsample=None, cardinality=1, base_width=64, sk=None, **_):
        super().__init__()
        width = int(math.floor(planes * (base_width / 64)) * cardinality)
        cout = planes * self.expansion
        self.conv1 = ConvNormAct(cin, width)
        self.conv2 = SelectiveKernel(width, width, stride, groups=cardinality, **(sk or {}))
        self.conv3 = ConvNormAct(width, cout, act=False)
        self.act = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.act(self.conv3(self.conv2(self.conv1(x))) + shortcut)


@dataclass(frozen=True)
class Cfg:
    """The arguments timm's sknet.py gives its ResNet."""

    block: type[nn.Module]
    layers: tuple[int, ...]
    sk: dict = field(default_factory=dict)
    cardinality: int = 1
    base_width: int = 64


CFGS = {
    "skresnet18": Cfg(SelectiveKernelBasic, (2, 2, 2, 2), dict(rd_ratio=1 / 8, rd_divisor=16, split_input=True)),
    "skresnet50": Cfg(SelectiveKernelBottleneck, (3, 4, 6, 3), dict(split_input=True)),
    "skresnext50_32x4d": Cfg(
        SelectiveKernelBottleneck, (3, 4, 6, 3), dict(rd_ratio=1 / 16, rd_divisor=32, split_input=False), 32, 4
    ),
}


def create_model(name: str) -> ResNet:
    cfg = CFGS[name]
    return ResNet(
        cfg.block, cfg.layers, cardinality=cfg.cardinality, base_width=cfg.base_width, block_args=dict(sk=cfg.sk)
    )
