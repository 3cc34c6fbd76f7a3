"""tests/timm_res2net.py, a compact PyTorch Res2Net written from timm's source, against timm's facts.

`res2net50_26w_4s` and `res2net50d` have facts in tests/reference/timm: the reference has their state_dict
keys, order and shapes and their parameter counts (read on the meta device), and their logits under the fill
recipe (res2net50_26w_4s's in the quick suite, res2net50d's with `--zoo`). `res2next50` has none: its
parameter count is worked out from timm's arguments.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import timm_facts
import torch
from recipe import fill_module
from timm_facts import TIMM, key_shapes, on_meta, recipe_input, relative_error, timm_keys
from timm_res2net import create_model

FACTS = ["res2net50_26w_4s", "res2net50d"]


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", FACTS)
def test_reference_has_timms_state_dict_and_parameters(name):
    model = on_meta(lambda: create_model(name))
    assert key_shapes(model) == timm_keys(name)
    assert n_params(model) == json.loads((TIMM / f"{name}.json").read_text())["num_params"]


@pytest.mark.parametrize("name", timm_facts.quick_or_slow(FACTS, {"res2net50_26w_4s"}))
def test_reference_gives_timms_logits(name):
    model = create_model(name).eval()
    fill_module(model)
    with torch.no_grad():
        logits = model(recipe_input((3, 224, 224))).numpy()
    expected = np.load(TIMM / f"{name}.out.npy")
    assert logits.shape == expected.shape
    assert relative_error(logits, expected) <= 1e-4


def test_res2next50_has_the_parameters_timms_arguments_give():
    """base_width 4, cardinality 8, scale 4: a stage of planes p has splits of width w = floor(p · 4/64) · 8
    (32, 64, 128, 256), conv1 to 4w, three 3×3 convs w → w in 8 groups (w · w/8 · 9 each), conv3 4w → 4p.
    A block from c channels holds c·4w + 8w (conv1, bn1) + 27w²/8 + 6w (convs, bns) + 4w·4p + 8p (conv3,
    bn3), the first of a stage also c·4p + 8p (downsample). Stem 3·64·49 + 128 = 9,536; stages 202,176,
    1,178,112, 6,910,464 and 14,322,176; fc 2048·1000 + 1000 = 2,049,000: 24,671,464 in all (timm's
    results table lists res2next50 at 24.67M)."""
    model = on_meta(lambda: create_model("res2next50"))
    assert n_params(model) == 24_671_464
    shapes = dict(key_shapes(model))
    assert shapes["layer1.0.conv1.weight"] == "128x64x1x1"
    assert shapes["layer1.0.convs.0.weight"] == "32x4x3x3"
    assert shapes["layer4.2.convs.2.weight"] == "256x32x3x3"
    assert shapes["layer1.0.downsample.0.weight"] == "256x64x1x1"  # downsample_conv: no pool in front
    assert "layer1.0.convs.3.weight" not in shapes and "layer1.0.pool.weight" not in shapes


def test_first_blocks_pool_the_last_split():
    """Every stage's first block (layer1.0 too: it has a projection) pools its last split; the others pass
    it through and chain the splits."""
    model = on_meta(lambda: create_model("res2net50_26w_4s"))
    firsts = [name for name, m in model.named_modules() if getattr(m, "pool", None) is not None]
    assert firsts == ["layer1.0", "layer2.0", "layer3.0", "layer4.0"]
    assert model.layer1[0].pool.stride == 1 and model.layer2[0].pool.stride == 2
