"""timm's SE-ResNet-50 (`seresnet50`) written out from its behaviour: the baseline for generated SE networks.

The modules and forward code path of timm's `models/resnet.py` with
`attn_layer='se'` and `layers/squeeze_excite.py`: one activation module per
position (`act1`, `act2`, `act3`, each `nn.ReLU(inplace=True)`), the
no-op modules timm's Bottleneck calls (`drop_block`, `aa`, and the SE
module's `bn`, all `nn.Identity`), `x += shortcut` in place, `SEModule`
(mean over H and W, `fc1`, ReLU, `fc2`, an `nn.Sigmoid` gate module, the
reduced width rounded as `make_divisible` does), a `global_pool` of
`nn.AdaptiveAvgPool2d(1)` then `nn.Flatten(1)`, `forward_features` and
`forward_head`, and timm's initialisation (Kaiming-normal fan-out convs,
the last BatchNorm of each block zeroed). Its state_dict keys are timm's,
so a generated `seresnet50` loads into it with strict=True. timm's own model
is used instead when timm is installed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


class SEModule(nn.Module):
    def __init__(self, channels: int, rd_ratio: float = 1.0 / 16, rd_divisor: int = 8) -> None:
        super().__init__()
        rd_channels = make_divisible(channels * rd_ratio, rd_divisor, round_limit=0.0)
        self.fc1 = nn.Conv2d(channels, rd_channels, kernel_size=1, bias=True)
        self.bn = nn.Identity()
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(rd_channels, channels, kernel_size=1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        x_se = x.mean((2, 3), keepdim=True)
        x_se = self.fc1(x_se)
        x_se = self.act(self.bn(x_se))
        x_se = self.fc2(x_se)
        return x * self.gate(x_se)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        cardinality: int = 1,
        base_width: int = 64,
    ) -> None:
        super().__init__()
        width = int(planes * (base_width / 64)) * cardinality
        outplanes = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, width, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(
            width, width, kernel_size=3, stride=stride, padding=1, dilation=1, groups=cardinality, bias=False
        )
        self.bn2 = nn.BatchNorm2d(width)
        self.drop_block = nn.Identity()
        self.act2 = nn.ReLU(inplace=True)
        self.aa = nn.Identity()
        self.conv3 = nn.Conv2d(width, outplanes, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(outplanes)
        self.se = SEModule(outplanes)
        self.act3 = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride
        self.drop_path: nn.Module | None = None

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn3.weight)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x

        x = self.conv1(x)
        x = self.bn1(x)
        x = self.act1(x)

        x = self.conv2(x)
        x = self.bn2(x)
        x = self.drop_block(x)
        x = self.act2(x)
        x = self.aa(x)

        x = self.conv3(x)
        x = self.bn3(x)

        if self.se is not None:
            x = self.se(x)

        if self.drop_path is not None:
            x = self.drop_path(x)

        if self.downsample is not None:
            shortcut = self.downsample(shortcut)
        x += shortcut
        x = self.act3(x)

        return x


class SelectAdaptivePool2d(nn.Module):
    """timm's global pool for pool_type='avg', flatten=True."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.flatten(self.pool(x))


class ResNet(nn.Module):
    def __init__(
        self,
        layers: tuple[int, ...],
        num_classes: int = 1000,
        in_chans: int = 3,
        cardinality: int = 1,
        base_width: int = 64,
        drop_rate: float = 0.0,
        zero_init_last: bool = True,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        inplanes = 64
        self.conv1 = nn.Conv2d(in_chans, inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        for index, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
            stride = 1 if index == 0 else 2
            downsample = None
            if stride != 1 or inplanes != planes * Bottleneck.expansion:
                downsample = nn.Sequential(
                    nn.Conv2d(inplanes, planes * Bottleneck.expansion, 1, stride=stride, padding=0, bias=False),
                    nn.BatchNorm2d(planes * Bottleneck.expansion),
                )
            stage = []
            for block in range(blocks):
                stage.append(
                    Bottleneck(
                        inplanes,
                        planes,
                        stride if block == 0 else 1,
                        downsample if block == 0 else None,
                        cardinality=cardinality,
                        base_width=base_width,
                    )
                )
                inplanes = planes * Bottleneck.expansion
            self.add_module(f"layer{index + 1}", nn.Sequential(*stage))
        self.num_features = 512 * Bottleneck.expansion
        self.global_pool = SelectAdaptivePool2d()
        self.fc = nn.Linear(self.num_features, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_last:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    m.zero_init_last()

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.act1(x)
        x = self.maxpool(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        return x

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.global_pool(x)
        if self.drop_rate:
            x = F.dropout(x, p=float(self.drop_rate), training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        x = self.forward_features(x)
        x = self.forward_head(x)
        return x


BUILDERS: dict[str, Callable[[], ResNet]] = {
    "seresnet50": lambda: ResNet((3, 4, 6, 3)),
}


# timm's Res2Net, ResNeSt and SK-ResNets: the compact references the tests check against timm's facts.
SPLIT_FAMILIES = {"res2ne": "timm_res2net", "resnest": "timm_resnest", "skresnet": "timm_sknet"}


def reference(name: str) -> tuple[nn.Module, str]:
    """timm's model `name` when timm is installed, else the code above (or the tests' compact reference)."""
    try:
        import timm

        return timm.create_model(name), "timm"
    except ImportError:
        pass
    family = next((module for prefix, module in SPLIT_FAMILIES.items() if name.startswith(prefix)), None)
    if family is None:
        return BUILDERS[name](), "timm's code path, written out in bench/reference_timm.py"
    import importlib
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    return importlib.import_module(family).create_model(name), f"timm's code path, written out in tests/{family}.py"


if __name__ == "__main__":  # the reference loads a generated seresnet50's state_dict strictly
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import resdsl

    generated = resdsl.create_model("seresnet50").eval()
    model, origin = reference("seresnet50")
    model.load_state_dict(generated.state_dict(), strict=True)
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        print(origin, "max |difference|:", float((model.eval()(x) - generated(x)).abs().max()))
