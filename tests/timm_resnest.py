"""A compact PyTorch ResNeSt, written from timm's `resnest.py` (`ResNestBottleneck`, the registry functions),
`layers/split_attn.py` (`SplitAttn`, `RadixSoftmax`), in the ResNet container of tests/timm_resnet.py
(timm's `ResNet`, which resnest.py builds on), without importing timm.

timm's module names and order: `conv1` (the deep stem's Sequential `0`, `1`, `3`, `4`, `6`; widths 32, 32,
64), `bn1`, `act1`, `maxpool`, stages `layer1` … `layer4`, then `fc`. Each block holds `conv1`, `bn1`,
`conv2` (a SplitAttn: `conv`, grouped 3×3 to width · radix, `bn0`, `fc1`, `bn1`, `fc2`, `rsoftmax`), `conv3`,
`bn3`, `downsample` (`0` a 2×2 average pool, ceil mode, not counting padding, or an identity where the stage
does not stride; `1` conv; `2` norm). With avd the strided blocks' 3×3 conv keeps stride 1 and `avd_last`,
an AvgPool2d(3, stride, padding=1) counting the padding, strides after it; timm's make_blocks never passes
`is_first`, so layer1.0 has none. SplitAttn's attention width is make_divisible(width · radix / 4, 8) and at
least 32.
"""

from __future__ import annotations

import torch.nn.functional as F
from timm_resnet import ResNet, make_divisible
from torch import nn

# timm's registry arguments (each also stem_type 'deep', stem_width 32, avg_down, base_width 64, cardinality 1,
# radix 2, avd, not avd_first)
LAYERS = {"resnest14d": (1, 1, 1, 1), "resnest26d": (2, 2, 2, 2), "resnest50d": (3, 4, 6, 3)}


class RadixSoftmax(nn.Module):
    def __init__(self, radix: int, cardinality: int):
        super().__init__()
        self.radix = radix
        self.cardinality = cardinality

    def forward(self, x):
        b = x.size(0)
        if self.radix == 1:
            return x.sigmoid()
        x = x.view(b, self.cardinality, self.radix, -1).transpose(1, 2)
        return F.softmax(x, dim=1).reshape(b, -1)


class SplitAttn(nn.Module):
    def __init__(self, channels: int, stride: int = 1, groups: int = 1, radix: int = 2, rd_ratio: float = 0.25):
        super().__init__()
        self.radix = radix
        mid = channels * radix
        attn = make_divisible(channels * radix * rd_ratio, 8, min_value=32)
        self.conv = nn.Conv2d(channels, mid, 3, stride, 1, groups=groups * radix, bias=False)
        self.bn0 = nn.BatchNorm2d(mid)
        self.act0 = nn.ReLU(inplace=True)
        self.fc1 = nn.Conv2d(channels, attn, 1, groups=groups)
        self.bn1 = nn.BatchNorm2d(attn)
        self.act1 = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(attn, mid, 1, groups=groups)
        self.rsoftmax = RadixSoftmax(radix, groups)

    def forward(self, x):
        x = self.act0(self.bn0(self.conv(x)))
        b, rc, h, w = x.shape
        if self.radix > 1:
            x = x.reshape(b, self.radix, rc // self.radix, h, w)
            gap = x.sum(dim=1)
        else:
            gap = x
        gap = self.act1(self.bn1(self.fc1(gap.mean((2, 3), keepdim=True))))
        attn = self.rsoftmax(self.fc2(gap)).view(b, -1, 1, 1)
        if self.radix > 1:
            return (x * attn.reshape(b, self.radix, rc // self.radix, 1, 1)).sum(dim=1).contiguous()
        return (x * attn).contiguous()


class ResNestBottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, radix=2, cardinality=1, base_width=64, **_):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * cardinality
        avd_stride = stride if stride > 1 else 0  # avd, not avd_first; is_first is never set
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = SplitAttn(width, stride=1 if avd_stride else stride, groups=cardinality, radix=radix)
        self.avd_last = nn.AvgPool2d(3, avd_stride, padding=1) if avd_stride else None
        self.conv3 = nn.Conv2d(width, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.act3 = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = self.conv2(self.act1(self.bn1(self.conv1(x))))
        if self.avd_last is not None:
            out = self.avd_last(out)
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.act3(out + shortcut)


def create_model(name: str) -> ResNet:
    return ResNet(
        ResNestBottleneck, LAYERS[name], stem_type="deep", stem_width=32, avg_down=True, block_args=dict(radix=2)
    )
