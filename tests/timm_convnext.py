"""A compact PyTorch ConvNeXt, written from timm's `convnext.py` (`ConvNeXt`, `ConvNeXtStage`,
`ConvNeXtBlock`, `NormMlpClassifierHead`), for the sizes that have no reference facts.

timm's module names and order: `stem.0` (a 4×4 stride-4 conv with bias), `stem.1` (LayerNorm2d),
`stages.S.downsample` (from the second stage on: LayerNorm2d, a 2×2 stride-2 conv with bias), and
`stages.S.blocks.B`: a block's own parameter `gamma` (layer scale, 1e-6 at the start) leads its state,
then `conv_dw` (7×7 depthwise, bias), `norm`, `mlp.fc1`, `mlp.fc2`; last `head.norm` (LayerNorm2d on
the pooled features) and `head.fc`. With `conv_mlp=True` a block's norm is LayerNorm2d and its MLP 1×1
convs; with `conv_mlp=False` it permutes to channels-last and runs nn.LayerNorm and nn.Linear there.
Every LayerNorm has eps 1e-6.
"""

from __future__ import annotations

import torch
from torch import nn

# timm's constructor arguments: depths, dims, conv_mlp
ARCH = {
    "convnext_atto": ((2, 2, 6, 2), (40, 80, 160, 320), True),
    "convnext_tiny": ((3, 3, 9, 3), (96, 192, 384, 768), False),
}
EPS = 1e-6


class LayerNorm2d(nn.LayerNorm):
    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, conv: bool):
        super().__init__()
        layer = (lambda i, o: nn.Conv2d(i, o, 1)) if conv else nn.Linear
        self.fc1, self.act, self.fc2 = layer(dim, hidden), nn.GELU(), layer(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, conv_mlp: bool):
        super().__init__()
        self.conv_mlp = conv_mlp
        self.conv_dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = LayerNorm2d(dim, eps=EPS) if conv_mlp else nn.LayerNorm(dim, eps=EPS)
        self.mlp = Mlp(dim, 4 * dim, conv_mlp)
        self.gamma = nn.Parameter(EPS * torch.ones(dim))

    def forward(self, x):
        out = self.conv_dw(x)
        if self.conv_mlp:
            out = self.mlp(self.norm(out))
        else:
            out = self.mlp(self.norm(out.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        return x + out * self.gamma.reshape(1, -1, 1, 1)


class Stage(nn.Module):
    def __init__(self, cin: int, cout: int, depth: int, conv_mlp: bool):
        super().__init__()
        if cin != cout:
            self.downsample = nn.Sequential(LayerNorm2d(cin, eps=EPS), nn.Conv2d(cin, cout, 2, stride=2))
        else:
            self.downsample = nn.Identity()
        self.blocks = nn.Sequential(*[Block(cout, conv_mlp) for _ in range(depth)])

    def forward(self, x):
        return self.blocks(self.downsample(x))


class Head(nn.Module):
    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.norm = LayerNorm2d(dim, eps=EPS)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.norm(x.mean((2, 3), keepdim=True)), 1))


class ConvNeXt(nn.Module):
    def __init__(self, depths, dims, conv_mlp: bool, num_classes: int = 1000):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], 4, stride=4), LayerNorm2d(dims[0], eps=EPS))
        cins = (dims[0], *dims[:-1])
        self.stages = nn.Sequential(*[Stage(i, o, d, conv_mlp) for i, o, d in zip(cins, dims, depths, strict=True)])
        self.head = Head(dims[-1], num_classes)

    def forward(self, x):
        return self.head(self.stages(self.stem(x)))


def create_model(name: str) -> ConvNeXt:
    return ConvNeXt(*ARCH[name])
