"""A compact PyTorch Res2Net, written from timm's `res2net.py` (`Bottle2neck`, the registry functions), in
the ResNet container of tests/timm_resnet.py (timm's `ResNet`, which res2net.py builds on), without
importing timm.

timm's module names and order: `conv1` (a 7×7 conv, or the deep stem's Sequential `0`, `1`, `3`, `4`, `6`),
`bn1`, `act1`, `maxpool`, stages `layer1` … `layer4` of `Bottle2neck`s, then `fc`. Each block holds `conv1`
(1×1 to width · scale), `bn1`, `convs` and `bns` (scale − 1 grouped 3×3 convs and their norms, each strided
as the block), `pool`, `conv3`, `bn3`, `downsample` (`0` pool or identity, `1` conv, `2` norm with avg_down;
`0` conv, `1` norm without). A block is "first" where it strides or has a projection (so layer1.0 too): its
splits do not take the previous split's output, and its last split goes through `pool`, an
AvgPool2d(3, stride, padding=1) that counts the padding, instead of passing through unchanged.
"""

from __future__ import annotations

import math

import torch
from timm_resnet import ResNet
from torch import nn

# timm's registry arguments: layers, base_width, cardinality, scale, deep stem (stem_width 32, avg_down)
ARGS = {
    "res2net50_26w_4s": dict(layers=(3, 4, 6, 3), base_width=26, cardinality=1, scale=4, deep=False),
    "res2net50d": dict(layers=(3, 4, 6, 3), base_width=26, cardinality=1, scale=4, deep=True),
    "res2next50": dict(layers=(3, 4, 6, 3), base_width=4, cardinality=8, scale=4, deep=False),
}


class Bottle2neck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, cardinality=1, base_width=26, scale=4, **_):
        super().__init__()
        self.scale = scale
        self.is_first = stride > 1 or downsample is not None
        self.width = width = int(math.floor(planes * (base_width / 64.0))) * cardinality
        outplanes = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, width * scale, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width * scale)
        n = max(1, scale - 1)
        self.convs = nn.ModuleList(
            nn.Conv2d(width, width, 3, stride, 1, groups=cardinality, bias=False) for _ in range(n)
        )
        self.bns = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(n))
        self.pool = nn.AvgPool2d(3, stride, padding=1) if self.is_first else None
        self.conv3 = nn.Conv2d(width * scale, outplanes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(outplanes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        spx = torch.split(out, self.width, 1)
        spo = []
        sp = spx[0]
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns, strict=True)):
            sp = spx[i] if i == 0 or self.is_first else sp + spx[i]
            sp = self.relu(bn(conv(sp)))
            spo.append(sp)
        if self.scale > 1:
            spo.append(self.pool(spx[-1]) if self.pool is not None else spx[-1])
        out = self.bn3(self.conv3(torch.cat(spo, 1)))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


def create_model(name: str) -> ResNet:
    args = ARGS[name]
    deep = dict(stem_type="deep", stem_width=32, avg_down=True) if args["deep"] else {}
    return ResNet(
        Bottle2neck,
        args["layers"],
        cardinality=args["cardinality"],
        base_width=args["base_width"],
        block_args=dict(scale=args["scale"]),
        **deep,
    )
