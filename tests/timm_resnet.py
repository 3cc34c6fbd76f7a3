"""timm's ResNet, written out compactly from timm's `resnet.py` and `layers/` (timm 1.0) without importing timm.

The same module names, order and forward computation as timm's `ResNet`, `BasicBlock`, `Bottleneck`,
`downsample_conv`/`downsample_avg`, stems, `SEModule`, `EcaModule`, `BlurPool2d`, average-pool
anti-aliasing, `GroupNorm`, and the pruned models' `adapt_model_from_string`; drop rates are left out
(zero in every zoo model, and identities in eval mode). `ZOO` holds the constructor arguments of the 80
models of timm's `resnet.py`, as its registry functions pass them. tests/test_timm_zoo.py checks this
file against timm's own facts (tests/reference/timm) and the bundled specs against this file.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

PRUNED = Path(__file__).resolve().parent / "reference" / "timm"


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < round_limit * v else new_v


class SEModule(nn.Module):
    def __init__(self, channels: int, rd_ratio: float = 1 / 16, rd_divisor: int = 8):
        super().__init__()
        rd_channels = make_divisible(channels * rd_ratio, rd_divisor, round_limit=0.0)
        self.fc1 = nn.Conv2d(channels, rd_channels, 1, bias=True)
        self.bn = nn.Identity()
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(rd_channels, channels, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        x_se = self.act(self.bn(self.fc1(x.mean((2, 3), keepdim=True))))
        return x * self.gate(self.fc2(x_se))


class EcaModule(nn.Module):
    def __init__(self, channels: int, gamma: float = 2, beta: float = 1):
        super().__init__()
        t = int(abs(math.log(channels, 2) + beta) / gamma)
        kernel_size = max(t if t % 2 else t + 1, 3)
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        y = self.conv(x.mean((2, 3)).view(x.shape[0], 1, -1))
        return x * self.gate(y).view(x.shape[0], -1, 1, 1).expand_as(x)


class BlurPool2d(nn.Module):
    def __init__(self, channels: int, filt_size: int = 3, stride: int = 2):
        super().__init__()
        self.stride = stride
        self.padding = [((stride - 1) + (filt_size - 1)) // 2] * 4
        coeffs = torch.tensor([math.comb(filt_size - 1, k) for k in range(filt_size)]) / 2 ** (filt_size - 1)
        self.register_buffer("filt", (coeffs[:, None] * coeffs[None, :])[None, None].repeat(channels, 1, 1, 1), False)

    def forward(self, x):
        return F.conv2d(F.pad(x, self.padding, mode="reflect"), self.filt, stride=self.stride, groups=x.shape[1])


class GroupNorm(nn.GroupNorm):
    def __init__(self, num_channels: int, num_groups: int = 32, eps: float = 1e-5):
        super().__init__(num_groups, num_channels, eps=eps)


def create_aa(aa_layer, channels: int, stride: int = 2, enable: bool = True) -> nn.Module:
    if aa_layer is None or not enable:
        return nn.Identity()
    return nn.AvgPool2d(stride) if aa_layer is nn.AvgPool2d else aa_layer(channels=channels, stride=stride)


def create_attn(attn_layer, channels: int) -> nn.Module | None:
    return None if attn_layer is None else attn_layer(channels)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(
        self, inplanes, planes, stride=1, downsample=None, cardinality=1, base_width=64, reduce_first=1,
        act_layer=nn.ReLU, norm_layer=nn.BatchNorm2d, attn_layer=None, aa_layer=None,
    ):  # fmt: skip
        super().__init__()
        assert cardinality == 1 and base_width == 64
        first_planes = planes // reduce_first
        outplanes = planes * self.expansion
        use_aa = aa_layer is not None and stride == 2
        self.conv1 = nn.Conv2d(inplanes, first_planes, 3, stride=1 if use_aa else stride, padding=1, bias=False)
        self.bn1 = norm_layer(first_planes)
        self.drop_block = nn.Identity()
        self.act1 = act_layer(inplace=True)
        self.aa = create_aa(aa_layer, first_planes, stride, enable=use_aa)
        self.conv2 = nn.Conv2d(first_planes, outplanes, 3, padding=1, bias=False)
        self.bn2 = norm_layer(outplanes)
        self.se = create_attn(attn_layer, outplanes)
        self.act2 = act_layer(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        shortcut = x
        x = self.aa(self.act1(self.drop_block(self.bn1(self.conv1(x)))))
        x = self.bn2(self.conv2(x))
        if self.se is not None:
            x = self.se(x)
        if self.downsample is not None:
            shortcut = self.downsample(shortcut)
        return self.act2(x + shortcut)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(
        self, inplanes, planes, stride=1, downsample=None, cardinality=1, base_width=64, reduce_first=1,
        act_layer=nn.ReLU, norm_layer=nn.BatchNorm2d, attn_layer=None, aa_layer=None,
    ):  # fmt: skip
        super().__init__()
        width = int(math.floor(planes * (base_width / 64)) * cardinality)
        first_planes = width // reduce_first
        outplanes = planes * self.expansion
        use_aa = aa_layer is not None and stride == 2
        self.conv1 = nn.Conv2d(inplanes, first_planes, 1, bias=False)
        self.bn1 = norm_layer(first_planes)
        self.act1 = act_layer(inplace=True)
        self.conv2 = nn.Conv2d(
            first_planes, width, 3, stride=1 if use_aa else stride, padding=1, groups=cardinality, bias=False
        )
        self.bn2 = norm_layer(width)
        self.drop_block = nn.Identity()
        self.act2 = act_layer(inplace=True)
        self.aa = create_aa(aa_layer, width, stride, enable=use_aa)
        self.conv3 = nn.Conv2d(width, outplanes, 1, bias=False)
        self.bn3 = norm_layer(outplanes)
        self.se = create_attn(attn_layer, outplanes)
        self.act3 = act_layer(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        shortcut = x
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.aa(self.act2(self.drop_block(self.bn2(self.conv2(x)))))
        x = self.bn3(self.conv3(x))
        if self.se is not None:
            x = self.se(x)
        if self.downsample is not None:
            shortcut = self.downsample(shortcut)
        return self.act3(x + shortcut)


def downsample_conv(in_channels, out_channels, kernel_size, stride=1, norm_layer=nn.BatchNorm2d):
    kernel_size = 1 if stride == 1 else kernel_size
    padding = ((stride - 1) + (kernel_size - 1)) // 2
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
    return nn.Sequential(conv, norm_layer(out_channels))


def downsample_avg(in_channels, out_channels, kernel_size, stride=1, norm_layer=nn.BatchNorm2d):
    pool = nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False) if stride != 1 else nn.Identity()
    return nn.Sequential(pool, nn.Conv2d(in_channels, out_channels, 1, bias=False), norm_layer(out_channels))


class ResNet(nn.Module):
    def __init__(
        self, block, layers, num_classes=1000, in_chans=3, cardinality=1, base_width=64, stem_width=64,
        stem_type="", replace_stem_pool=False, block_reduce_first=1, down_kernel_size=1, avg_down=False,
        act_layer=nn.ReLU, norm_layer=nn.BatchNorm2d, aa_layer=None, attn_layer=None, block_args=None,
    ):  # fmt: skip
        super().__init__()
        deep_stem = "deep" in stem_type
        inplanes = stem_width * 2 if deep_stem else 64
        if deep_stem:
            stem_chs = (3 * (stem_width // 4), stem_width) if "tiered" in stem_type else (stem_width, stem_width)
            self.conv1 = nn.Sequential(
                nn.Conv2d(in_chans, stem_chs[0], 3, stride=2, padding=1, bias=False),
                norm_layer(stem_chs[0]),
                act_layer(inplace=True),
                nn.Conv2d(stem_chs[0], stem_chs[1], 3, stride=1, padding=1, bias=False),
                norm_layer(stem_chs[1]),
                act_layer(inplace=True),
                nn.Conv2d(stem_chs[1], inplanes, 3, stride=1, padding=1, bias=False),
            )
        else:
            self.conv1 = nn.Conv2d(in_chans, inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(inplanes)
        self.act1 = act_layer(inplace=True)
        if replace_stem_pool:
            self.maxpool = nn.Sequential(
                *filter(
                    None,
                    [
                        nn.Conv2d(inplanes, inplanes, 3, stride=1 if aa_layer else 2, padding=1, bias=False),
                        create_aa(aa_layer, inplanes, 2) if aa_layer is not None else None,
                        norm_layer(inplanes),
                        act_layer(inplace=True),
                    ],
                )
            )
        elif aa_layer is nn.AvgPool2d:
            self.maxpool = nn.AvgPool2d(2)
        elif aa_layer is not None:
            self.maxpool = nn.Sequential(nn.MaxPool2d(3, 1, 1), aa_layer(channels=inplanes, stride=2))
        else:
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        block_args = dict(
            cardinality=cardinality, base_width=base_width, reduce_first=block_reduce_first, act_layer=act_layer,
            norm_layer=norm_layer, attn_layer=attn_layer, aa_layer=aa_layer, **(block_args or {}),
        )  # fmt: skip  # block_args: what other families' blocks take besides (Res2Net's scale, ResNeSt's radix)
        for stage, (planes, count) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
            stride = 1 if stage == 0 else 2
            downsample = None
            if stride != 1 or inplanes != planes * block.expansion:
                make = downsample_avg if avg_down else downsample_conv
                downsample = make(inplanes, planes * block.expansion, down_kernel_size, stride, norm_layer)
            blocks = []
            for index in range(count):
                blocks.append(block(inplanes, planes, stride if index == 0 else 1, downsample, **block_args))
                downsample = None
                inplanes = planes * block.expansion
            self.add_module(f"layer{stage + 1}", nn.Sequential(*blocks))
        self.global_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.fc = nn.Linear(inplanes, num_classes)

    def forward(self, x):
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.global_pool(x))


def adapt_pruned(model: nn.Module, name: str) -> nn.Module:
    """timm's adapt_model_from_string: the convs, BatchNorms and classifier take the pruned file's widths."""
    text = (PRUNED / f"{name}.txt").read_text().strip()
    shapes = {}
    for entry in text.split("***"):
        key, shape = entry.split(":")
        shapes[key] = [int(i) for i in shape[1:-1].split(",")]
    for path, module in list(model.named_modules()):
        parent_path, _, attr = path.rpartition(".")
        parent = model.get_submodule(parent_path)
        if type(module) is nn.Conv2d:
            out_channels, in_channels = shapes[path + ".weight"][:2]
            new: nn.Module = nn.Conv2d(
                in_channels, out_channels, module.kernel_size, module.stride, module.padding, module.dilation,
                bias=module.bias is not None,
            )  # fmt: skip
        elif type(module) is nn.BatchNorm2d:
            new = nn.BatchNorm2d(shapes[path + ".weight"][0])
        elif type(module) is nn.Linear:
            new = nn.Linear(shapes[path + ".weight"][1], module.out_features)
        else:
            continue
        setattr(parent, attr, new)
    return model


T = dict(stem_width=32, stem_type="deep_tiered", avg_down=True)  # the `t` models
D = dict(stem_width=32, stem_type="deep", avg_down=True)  # the `d` models
C = dict(stem_width=32, stem_type="deep")  # the `c` models
S = dict(stem_width=64, stem_type="deep")  # the `s` models
SE, ECA = dict(attn_layer=SEModule), dict(attn_layer=EcaModule)
RS = dict(replace_stem_pool=True, attn_layer=partial(SEModule, rd_ratio=0.25), **D)  # ResNet-RS
BLUR, AA = dict(aa_layer=BlurPool2d), dict(aa_layer=nn.AvgPool2d)
B, N = BasicBlock, Bottleneck
L18 = L26 = (2, 2, 2, 2)
L34 = L50 = (3, 4, 6, 3)
L101, L152, L200, L269 = (3, 4, 23, 3), (3, 8, 36, 3), (3, 24, 36, 3), (3, 30, 48, 8)
X32x4, X32x8 = dict(cardinality=32, base_width=4), dict(cardinality=32, base_width=8)

# Every model of timm's resnet.py but test_resnet: its ResNet arguments, and its default input size where
# that is not 3x224x224 (timm's pretrained_cfg of the model's default tag).
ZOO: dict[str, dict] = {
    "resnet10t": dict(block=B, layers=(1, 1, 1, 1), input=(3, 176, 176), **T),
    "resnet14t": dict(block=N, layers=(1, 1, 1, 1), input=(3, 176, 176), **T),
    "resnet18": dict(block=B, layers=L18),
    "resnet18d": dict(block=B, layers=L18, **D),
    "resnet34": dict(block=B, layers=L34),
    "resnet34d": dict(block=B, layers=L34, **D),
    "resnet26": dict(block=N, layers=L26),
    "resnet26t": dict(block=N, layers=L26, input=(3, 256, 256), **T),
    "resnet26d": dict(block=N, layers=L26, **D),
    "resnet50": dict(block=N, layers=L50),
    "resnet50c": dict(block=N, layers=L50, **C),
    "resnet50d": dict(block=N, layers=L50, **D),
    "resnet50s": dict(block=N, layers=L50, **S),
    "resnet50t": dict(block=N, layers=L50, **T),
    "resnet101": dict(block=N, layers=L101),
    "resnet101c": dict(block=N, layers=L101, **C),
    "resnet101d": dict(block=N, layers=L101, input=(3, 256, 256), **D),
    "resnet101s": dict(block=N, layers=L101, **S),
    "resnet152": dict(block=N, layers=L152),
    "resnet152c": dict(block=N, layers=L152, **C),
    "resnet152d": dict(block=N, layers=L152, input=(3, 256, 256), **D),
    "resnet152s": dict(block=N, layers=L152, **S),
    "resnet200": dict(block=N, layers=L200),
    "resnet200d": dict(block=N, layers=L200, input=(3, 256, 256), **D),
    "wide_resnet50_2": dict(block=N, layers=L50, base_width=128),
    "wide_resnet101_2": dict(block=N, layers=L101, base_width=128),
    "resnet50_gn": dict(block=N, layers=L50, norm_layer=GroupNorm),
    "resnext50_32x4d": dict(block=N, layers=L50, **X32x4),
    "resnext50d_32x4d": dict(block=N, layers=L50, **X32x4, **D),
    "resnext101_32x4d": dict(block=N, layers=L101, **X32x4),
    "resnext101_32x8d": dict(block=N, layers=L101, **X32x8),
    "resnext101_32x16d": dict(block=N, layers=L101, cardinality=32, base_width=16),
    "resnext101_32x32d": dict(block=N, layers=L101, cardinality=32, base_width=32),
    "resnext101_64x4d": dict(block=N, layers=L101, cardinality=64, base_width=4),
    "ecaresnet26t": dict(block=N, layers=L26, input=(3, 256, 256), **T, **ECA),
    "ecaresnet50d": dict(block=N, layers=L50, **D, **ECA),
    "ecaresnet50d_pruned": dict(block=N, layers=L50, pruned=True, **D, **ECA),
    "ecaresnet50t": dict(block=N, layers=L50, input=(3, 256, 256), **T, **ECA),
    "ecaresnetlight": dict(block=N, layers=(1, 1, 11, 3), stem_width=32, avg_down=True, **ECA),
    "ecaresnet101d": dict(block=N, layers=L101, **D, **ECA),
    "ecaresnet101d_pruned": dict(block=N, layers=L101, pruned=True, **D, **ECA),
    "ecaresnet200d": dict(block=N, layers=L200, input=(3, 256, 256), **D, **ECA),
    "ecaresnet269d": dict(block=N, layers=L269, input=(3, 320, 320), **D, **ECA),
    "ecaresnext26t_32x4d": dict(block=N, layers=L26, **X32x4, **T, **ECA),
    "ecaresnext50t_32x4d": dict(block=N, layers=L26, **X32x4, **T, **ECA),  # timm gives it 2, 2, 2, 2 blocks
    "seresnet18": dict(block=B, layers=L18, **SE),
    "seresnet34": dict(block=B, layers=L34, **SE),
    "seresnet50": dict(block=N, layers=L50, **SE),
    "seresnet50t": dict(block=N, layers=L50, **T, **SE),
    "seresnet101": dict(block=N, layers=L101, **SE),
    "seresnet152": dict(block=N, layers=L152, **SE),
    "seresnet152d": dict(block=N, layers=L152, input=(3, 256, 256), **D, **SE),
    "seresnet200d": dict(block=N, layers=L200, input=(3, 256, 256), **D, **SE),
    "seresnet269d": dict(block=N, layers=L269, input=(3, 256, 256), **D, **SE),
    "seresnext26d_32x4d": dict(block=N, layers=L26, **X32x4, **D, **SE),
    "seresnext26t_32x4d": dict(block=N, layers=L26, **X32x4, **T, **SE),
    "seresnext50_32x4d": dict(block=N, layers=L50, **X32x4, **SE),
    "seresnext101_32x4d": dict(block=N, layers=L101, **X32x4, **SE),
    "seresnext101_32x8d": dict(block=N, layers=L101, **X32x8, **SE),
    "seresnext101d_32x8d": dict(block=N, layers=L101, **X32x8, **D, **SE),
    "seresnext101_64x4d": dict(block=N, layers=L101, cardinality=64, base_width=4, **SE),
    "senet154": dict(
        block=N,
        layers=L152,
        cardinality=64,
        base_width=4,
        stem_type="deep",
        down_kernel_size=3,
        block_reduce_first=2,
        **SE,
    ),  # fmt: skip
    "resnetblur18": dict(block=B, layers=L18, **BLUR),
    "resnetblur50": dict(block=N, layers=L50, **BLUR),
    "resnetblur50d": dict(block=N, layers=L50, **BLUR, **D),
    "resnetblur101d": dict(block=N, layers=L101, **BLUR, **D),
    "resnetaa34d": dict(block=B, layers=L34, **AA, **D),
    "resnetaa50": dict(block=N, layers=L50, **AA),
    "resnetaa50d": dict(block=N, layers=L50, **AA, **D),
    "resnetaa101d": dict(block=N, layers=L101, **AA, **D),
    "seresnetaa50d": dict(block=N, layers=L50, **AA, **D, **SE),
    "seresnextaa101d_32x8d": dict(block=N, layers=L101, input=(3, 288, 288), **X32x8, **D, **AA, **SE),
    "seresnextaa201d_32x8d": dict(
        block=N,
        layers=(3, 24, 36, 4),
        input=(3, 384, 384),
        **X32x8,
        **AA,
        **SE,
        stem_width=64,
        stem_type="deep",
        avg_down=True,
    ),  # fmt: skip
    "resnetrs50": dict(block=N, layers=L50, input=(3, 160, 160), **RS),
    "resnetrs101": dict(block=N, layers=L101, input=(3, 192, 192), **RS),
    "resnetrs152": dict(block=N, layers=L152, input=(3, 256, 256), **RS),
    "resnetrs200": dict(block=N, layers=L200, input=(3, 256, 256), **RS),
    "resnetrs270": dict(block=N, layers=(4, 29, 53, 4), input=(3, 256, 256), **RS),
    "resnetrs350": dict(block=N, layers=(4, 36, 72, 4), input=(3, 288, 288), **RS),
    "resnetrs420": dict(block=N, layers=(4, 44, 87, 4), input=(3, 320, 320), **RS),
}


def input_size(name: str) -> tuple[int, int, int]:
    return ZOO[name].get("input", (3, 224, 224))


def create_model(name: str) -> nn.Module:
    """The model timm's `timm.create_model(name)` builds, freshly initialised."""
    args = {k: v for k, v in ZOO[name].items() if k not in ("input", "pruned")}
    model = ResNet(**args)
    return adapt_pruned(model, name) if ZOO[name].get("pruned") else model
