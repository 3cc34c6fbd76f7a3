"""A compact PyTorch SK-ResNet, written from timm's `sknet.py` (`SelectiveKernelBasic`,
`SelectiveKernelBottleneck`), `selective_kernel.py` (`SelectiveKernel`, `SelectiveKernelAttn`) and the
`ResNet` container of `resnet.py` (`make_blocks`, `downsample_conv`), for checking the SK-ResNet specs.

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
from torch import nn


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """timm's make_divisible: the nearest multiple of `divisor`, at least `min_value` (default `divisor`),
    rounded up when rounding down would lose more than 10%."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


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


def downsample(cin: int, cout: int, stride: int) -> nn.Sequential:
    """timm's downsample_conv with down_kernel_size 1: keys `0.weight`, `1.*`."""
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class SelectiveKernelBasic(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, cardinality: int, base_width: int, sk: dict):
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = SelectiveKernel(cin, planes, stride, **sk)
        self.conv2 = ConvNormAct(planes, cout, 3, act=False)
        self.act = nn.ReLU()
        self.downsample = downsample(cin, cout, stride) if stride != 1 or cin != cout else None

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.act(self.conv2(self.conv1(x)) + shortcut)


class SelectiveKernelBottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, cardinality: int, base_width: int, sk: dict):
        super().__init__()
        width = int(math.floor(planes * (base_width / 64)) * cardinality)
        cout = planes * self.expansion
        self.conv1 = ConvNormAct(cin, width)
        self.conv2 = SelectiveKernel(width, width, stride, groups=cardinality, **sk)
        self.conv3 = ConvNormAct(width, cout, act=False)
        self.act = nn.ReLU()
        self.downsample = downsample(cin, cout, stride) if stride != 1 or cin != cout else None

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


class SKResNet(nn.Module):
    def __init__(self, cfg: Cfg, num_classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.act1 = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for s, (planes, depth) in enumerate(zip((64, 128, 256, 512), cfg.layers, strict=True)):
            blocks = []
            for b in range(depth):
                stride = 2 if s > 0 and b == 0 else 1
                blocks.append(cfg.block(cin, planes, stride, cfg.cardinality, cfg.base_width, cfg.sk))
                cin = planes * cfg.block.expansion
            self.add_module(f"layer{s + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean((2, 3)))


def create_model(name: str) -> SKResNet:
    return SKResNet(CFGS[name])
