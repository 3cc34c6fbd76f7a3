"""A compact PyTorch RegNet, written from timm's `regnet.py` (`RegNetCfg`, `generate_regnet`,
`adjust_widths_groups_comp`, `Bottleneck`, `RegStage`, `RegNet`), for the models without reference facts.

timm's module names and order: `stem` (`conv`, `bn`), stages `s1` … `s4` of blocks `b1`, `b2`, …, each
`conv1`, `conv2` (grouped 3×3, strided), `se` (`fc1`, `fc2`, squeezed to round(in_chs · se_ratio)),
`conv3`, `downsample` (`conv`, `bn`, after the branch; none in RegNetZ), then `final_conv` (RegNetZ's
1×1 conv to `num_features`) and `head.fc`. Every conv is a ConvNormAct (`conv`, `bn`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Cfg:
    """timm's RegNetCfg, the fields these models set."""

    depth: int
    w0: int
    wa: float
    wm: float
    group_size: int
    bottle_ratio: float = 1.0
    se_ratio: float = 0.0
    downsample: bool = True  # 'conv1x1'; False: timm's downsample=None (no shortcut where shapes change)
    linear_out: bool = False
    num_features: int = 0
    act: type[nn.Module] = nn.ReLU


CFGS = {
    "regnetx_016": Cfg(depth=18, w0=80, wa=34.01, wm=2.25, group_size=24),
    "regnety_016": Cfg(depth=27, w0=48, wa=20.71, wm=2.65, group_size=24, se_ratio=0.25),
    "regnety_032": Cfg(depth=21, w0=80, wa=42.63, wm=2.66, group_size=24, se_ratio=0.25),
    "regnetz_005": Cfg(
        depth=21, w0=16, wa=10.7, wm=2.51, group_size=4, bottle_ratio=4.0, se_ratio=0.25,
        downsample=False, linear_out=True, num_features=1024, act=nn.SiLU,
    ),
}  # fmt: skip


def stage_args(cfg: Cfg) -> list[tuple[int, int, int]]:
    """(width, depth, group size) of each stage: timm's generate_regnet, then adjust_widths_groups_comp."""
    cont = torch.arange(cfg.depth, dtype=torch.float32, device="cpu") * cfg.wa + cfg.w0  # also under meta
    exps = torch.round(torch.log(cont / cfg.w0) / math.log(cfg.wm))
    widths = (torch.round(cfg.w0 * torch.pow(cfg.wm, exps) / 8) * 8).int()
    stage_widths, depths = (t.tolist() for t in torch.unique(widths, return_counts=True))
    stages = []
    for width, depth in zip(stage_widths, depths, strict=True):
        bottleneck = int(width * cfg.bottle_ratio)
        group = min(cfg.group_size, bottleneck)
        bottleneck = int(round(bottleneck / group) * group)
        stages.append((int(bottleneck / cfg.bottle_ratio), depth, group))
    return stages


class ConvNormAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, act=None):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        if act is not None:
            self.act = act()


class SE(nn.Module):
    def __init__(self, channels: int, squeezed: int, act):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.act = act()
        self.fc2 = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True)))))


class Bottleneck(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, group_size: int, cfg: Cfg):
        super().__init__()
        mid = int(round(cout * cfg.bottle_ratio))
        self.conv1 = ConvNormAct(cin, mid, act=cfg.act)
        self.conv2 = ConvNormAct(mid, mid, 3, stride, mid // group_size, act=cfg.act)
        self.se = SE(mid, int(round(cin * cfg.se_ratio)), cfg.act) if cfg.se_ratio else nn.Identity()
        self.conv3 = ConvNormAct(mid, cout)
        changes = cin != cout or stride != 1
        self.skip = cfg.downsample or not changes
        self.downsample = ConvNormAct(cin, cout, 1, stride) if changes and cfg.downsample else nn.Identity()
        self.act3 = nn.Identity() if cfg.linear_out else cfg.act()

    def forward(self, x):
        out = self.conv3(self.se(self.conv2(self.conv1(x))))
        if self.skip:
            out = out + self.downsample(x)
        return self.act3(out)


class Head(nn.Module):
    def __init__(self, features: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(features, num_classes)

    def forward(self, x):
        return self.fc(x.mean((2, 3)))


class RegNet(nn.Module):
    def __init__(self, cfg: Cfg, num_classes: int = 1000):
        super().__init__()
        self.stem = ConvNormAct(3, 32, 3, 2, act=cfg.act)
        width = 32
        for s, (out, depth, group) in enumerate(stage_args(cfg), start=1):
            stage = nn.Sequential()
            for b in range(depth):
                stage.add_module(f"b{b + 1}", Bottleneck(width, out, 2 if b == 0 else 1, group, cfg))
                width = out
            self.add_module(f"s{s}", stage)
        if cfg.num_features:
            self.final_conv = ConvNormAct(width, cfg.num_features, act=cfg.act)
            width = cfg.num_features
        else:
            self.final_conv = nn.Identity()
        self.head = Head(width, num_classes)

    def forward(self, x):
        x = self.stem(x)
        x = self.s4(self.s3(self.s2(self.s1(x))))
        return self.head(self.final_conv(x))


def create_model(name: str) -> RegNet:
    return RegNet(CFGS[name])
