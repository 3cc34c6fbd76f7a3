"""Full pre-activation ResNets against the structure of the paper's reference code.

He et al. 2016 ("Identity Mappings in Deep Residual Networks") released
ResNet-164/1001 as resnet-1k-layers. `Reference` below is written from that
code's structure: a unit that changes dimensions applies one BN → ReLU and
feeds it to both its residual branch and a 1×1 projection without BN, and
strides its first 1×1 conv; every other unit is (BN → ReLU → conv) three
times around an identity shortcut; a 3×3 conv stem without BN; BN → ReLU,
global average pooling and a linear classifier at the end. With the same
weights, the module resdsl generates from specs/preact_resnet164.res must
compute the same function.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import resdsl

SPEC = Path(__file__).resolve().parent.parent / "specs" / "preact_resnet164.res"


class Unit(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        mid = cout // 4
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, mid, 1, stride, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, 1, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
        self.projection = nn.Conv2d(cin, cout, 1, stride, bias=False) if cin != cout else None

    def forward(self, x):
        pre = F.relu(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        return out + (x if self.projection is None else self.projection(pre))


class Reference(nn.Module):
    def __init__(self, depth: int, classes: int = 10):
        super().__init__()
        n = (depth - 2) // 9
        widths = [16, 64, 128, 256]
        self.conv = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.stages = nn.Sequential(
            *(
                nn.Sequential(Unit(cin, cout, stride), *(Unit(cout, cout, 1) for _ in range(n - 1)))
                for cin, cout, stride in zip(widths[:-1], widths[1:], (1, 2, 2), strict=True)
            )
        )
        self.bn = nn.BatchNorm2d(widths[-1])
        self.fc = nn.Linear(widths[-1], classes)

    def forward(self, x):
        x = F.relu(self.bn(self.stages(self.conv(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def _random_state(module: nn.Module, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """He-normal convs, and BatchNorms with statistics and affine terms far from the identity."""
    state = {}
    for key, value in module.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = value
        elif value.dim() > 1:
            state[key] = torch.randn(value.shape, generator=generator) * math.sqrt(2 / value[0].numel())
        elif key.endswith(("running_var", ".weight")):
            state[key] = torch.rand(value.shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(value.shape, generator=generator) * 0.2
    return state


@pytest.mark.parametrize("depth", [20, 47])
def test_generated_preact_resnet_is_the_reference(depth):
    ours = resdsl.compile(SPEC, {"n": str((depth - 2) // 9)}).to_torch().eval()
    reference = Reference(depth).eval()
    state = _random_state(ours, torch.Generator().manual_seed(depth))
    ours.load_state_dict(state)
    # The reference registers its modules in the same order: pair the entries up by position.
    pairs = list(zip(reference.state_dict(), state.values(), strict=True))
    assert all(reference.state_dict()[key].shape == value.shape for key, value in pairs)
    reference.load_state_dict(dict(pairs))
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(x)
        torch.testing.assert_close(ours(x), expected, atol=1e-4 * expected.abs().max().item(), rtol=0)


def test_resnet164_has_the_papers_parameter_count():
    """1.7 M in the paper's Table 2; the reference structure gives 1,703,258."""
    ours = resdsl.compile(SPEC)
    assert ours.params == sum(p.numel() for p in Reference(164).parameters()) == 1_703_258


# -- the widely copied CIFAR PreActResNet18 (pytorch-cifar) -------------------------------------------


class PreActBlock(nn.Module):
    """pytorch-cifar's PreActBlock: BN → ReLU once, feeding the branch and a 1×1 `shortcut` (no BN) where the
    block changes shape; BN → ReLU → conv twice; no activation after the add."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False))

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet18(nn.Module):
    """pytorch-cifar's PreActResNet18: a 3×3 stem without BN, stages of two blocks from 64 to 512 channels,
    an average pool over the final 4×4 map, a linear classifier named `linear`."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        cin = 64
        for i, cout in enumerate((64, 128, 256, 512)):
            blocks = [PreActBlock(cin, cout, 1 if i == 0 else 2), PreActBlock(cout, cout, 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            cin = cout
        self.linear = nn.Linear(512, classes)

    def forward(self, x):
        out = self.conv1(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(torch.flatten(F.avg_pool2d(out, 4), 1))


CIFAR_PREACT = SPEC.parent / "cifar_preact_resnet18.res"


def test_cifar_preact_resnet18_is_pytorch_cifars():
    """The same state_dict keys, order and shapes (its checkpoints load with strict=True: 11,171,146
    parameters), and the same function."""
    net = resdsl.compile(CIFAR_PREACT)
    ours = net.to_torch().eval()
    reference = PreActResNet18().eval()
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [
        (k, v.shape) for k, v in reference.state_dict().items()
    ]
    assert net.params == sum(p.numel() for p in reference.parameters()) == 11_171_146
    state = _random_state(ours, torch.Generator().manual_seed(18))
    ours.load_state_dict(state)
    reference.load_state_dict(state)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(x)
        torch.testing.assert_close(ours(x), expected, atol=1e-4 * expected.abs().max().item(), rtol=0)


def test_shortcut_module_names_every_projection():
    """`policy shortcut_module = shortcut` renames projections in every backend, numbered members kept."""
    net = resdsl.compile(SPEC, {"n": "2", "shortcut_module": "shortcut"})
    paths = [n.path for n in net.ir if n.shortcut_of is not None and n.path]
    assert paths == ["layer1.0.shortcut.0", "layer2.0.shortcut.0", "layer3.0.shortcut.0"]
    assert "identity = self.shortcut(preact)" in net.torch_source
    assert "self.downsample" not in net.torch_source
    with pytest.raises(resdsl.ResdslError) as info:  # a block's own module of that name clashes
        resdsl.compile(
            'use "std/blocks.res"\nblock b(c) {\n  shortcut = conv(c, k=1)\n  conv(c * 2, k=3)\n  add input\n}\n'
            "network n {\n  input 4x8x8\n  policy shortcut_module = shortcut\n  b(4)\n}\n"
        )
    # Once, though the projection inserts a conv and a norm under that name.
    assert [d.code for d in info.value.diagnostics] == ["E0209"]
