"""A compact PyTorch MobileNetV2, written from timm's `efficientnet.py` (`_gen_mobilenet_v2`) and
`_efficientnet_blocks.py`, for the width multipliers that have no reference facts.

timm's module names and order: `conv_stem`, `bn1`, `blocks.S.B` (a DepthwiseSeparableConv first:
`conv_dw`, `bn1`, `conv_pw`, `bn2`; then InvertedResiduals: `conv_pw`, `bn1`, `conv_dw`, `bn2`,
`conv_pwl`, `bn3`), `conv_head`, `bn2`, `classifier`. Every width is `make_divisible(c · multiplier, 8)`,
the head `max(1280, that of 1280)`. A block adds its input only when it keeps its stride and width.
"""

from __future__ import annotations

from torch import nn

# timm's arch_def for MobileNetV2: (block, repeats, stride, expansion, channels)
ARCH = [("ds", 1, 1, 1, 16), ("ir", 2, 2, 6, 24), ("ir", 3, 2, 6, 32), ("ir", 4, 2, 6, 64),
        ("ir", 3, 1, 6, 96), ("ir", 3, 2, 6, 160), ("ir", 1, 1, 6, 320)]  # fmt: skip
MULTIPLIERS = {"mobilenetv2_100": 1.0, "mobilenetv2_140": 1.4}


def make_divisible(v: float, divisor: int = 8, round_limit: float = 0.9) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < round_limit * v else new_v


def conv_bn(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    return nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)


class DepthwiseSeparable(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv_dw, self.bn1 = conv_bn(cin, cin, 3, stride, cin)
        self.conv_pw, self.bn2 = conv_bn(cin, cout)
        self.has_skip = stride == 1 and cin == cout

    def forward(self, x):
        out = self.bn2(self.conv_pw(nn.functional.relu6(self.bn1(self.conv_dw(x)))))
        return out + x if self.has_skip else out


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        mid = make_divisible(cin * expansion)
        self.conv_pw, self.bn1 = conv_bn(cin, mid)
        self.conv_dw, self.bn2 = conv_bn(mid, mid, 3, stride, mid)
        self.conv_pwl, self.bn3 = conv_bn(mid, cout)
        self.has_skip = stride == 1 and cin == cout

    def forward(self, x):
        out = nn.functional.relu6(self.bn1(self.conv_pw(x)))
        out = nn.functional.relu6(self.bn2(self.conv_dw(out)))
        out = self.bn3(self.conv_pwl(out))
        return out + x if self.has_skip else out


class MobileNetV2(nn.Module):
    def __init__(self, multiplier: float = 1.0, num_classes: int = 1000):
        super().__init__()
        width = make_divisible(32 * multiplier)
        self.conv_stem, self.bn1 = conv_bn(3, width, 3, 2)
        stages = []
        for kind, repeats, stride, expansion, channels in ARCH:
            cout = make_divisible(channels * multiplier)
            blocks = []
            for i in range(repeats):
                s = stride if i == 0 else 1
                if kind == "ds":
                    blocks.append(DepthwiseSeparable(width, cout, s))
                else:
                    blocks.append(InvertedResidual(width, cout, s, expansion))
                width = cout
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        features = max(1280, make_divisible(1280 * multiplier))
        self.conv_head, self.bn2 = conv_bn(width, features)
        self.classifier = nn.Linear(features, num_classes)

    def forward(self, x):
        x = nn.functional.relu6(self.bn1(self.conv_stem(x)))
        x = self.blocks(x)
        x = nn.functional.relu6(self.bn2(self.conv_head(x)))
        return self.classifier(x.mean((2, 3)))


def create_model(name: str) -> MobileNetV2:
    return MobileNetV2(MULTIPLIERS[name])
