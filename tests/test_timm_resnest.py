"""tests/timm_resnest.py, a compact PyTorch ResNeSt written from timm's source, against timm's facts.

`resnest14d` and `resnest50d` have facts in tests/reference/timm: the reference has their state_dict keys,
order and shapes and their parameter counts (read on the meta device), and their logits under the fill
recipe (resnest14d's in the quick suite, resnest50d's with `--zoo`).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import timm_facts
import torch
from recipe import fill_module
from timm_facts import TIMM, key_shapes, on_meta, recipe_input, relative_error, timm_keys
from timm_resnest import create_model, make_divisible

FACTS = ["resnest14d", "resnest50d"]


@pytest.mark.parametrize("name", FACTS)
def test_reference_has_timms_state_dict_and_parameters(name):
    model = on_meta(lambda: create_model(name))
    assert key_shapes(model) == timm_keys(name)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == json.loads((TIMM / f"{name}.json").read_text())["num_params"]


@pytest.mark.parametrize("name", timm_facts.quick_or_slow(FACTS, {"resnest14d"}))
def test_reference_gives_timms_logits(name):
    model = create_model(name).eval()
    fill_module(model)
    with torch.no_grad():
        logits = model(recipe_input((3, 224, 224))).numpy()
    expected = np.load(TIMM / f"{name}.out.npy")
    assert logits.shape == expected.shape
    assert relative_error(logits, expected) <= 1e-4


def test_attention_width_and_avd():
    """SplitAttn's attention width is make_divisible(width · radix / 4, 8), at least 32 (32, 64, 128, 256 by
    stage); only the strided blocks average-pool after the split attention (layer1.0 has a projection but
    no stride, and timm never marks it first)."""
    assert [make_divisible(w * 2 * 0.25, 8, min_value=32) for w in (64, 128, 256, 512)] == [32, 64, 128, 256]
    assert make_divisible(16 * 2 * 0.25, 8, min_value=32) == 32
    model = on_meta(lambda: create_model("resnest50d"))
    pooled = [name for name, m in model.named_modules() if getattr(m, "avd_last", None) is not None]
    assert pooled == ["layer2.0", "layer3.0", "layer4.0"]
    assert model.layer2[0].conv2.conv.stride == (1, 1)
