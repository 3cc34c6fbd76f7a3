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
