"""tests/timm_sknet.py, the compact SK-ResNet reference, against timm's facts.

skresnet18 and skresnet50 have facts in tests/reference/timm: the reference has their state_dict keys
(read on the meta device), parameter count and logits under the fill recipe (skresnet50's only with
`--zoo`). skresnext50_32x4d has none: its parameter count and the shapes that tell its selective kernels
apart (grouped paths reading the whole input, attention widths rounded to multiples of 32) are the ones
timm's constructor arguments give.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import timm_facts
import torch
from recipe import fill_module
from timm_facts import TIMM, key_shapes, on_meta, recipe_input, relative_error, timm_keys
from timm_sknet import create_model, make_divisible

FACTS = ["skresnet18", "skresnet50"]


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", FACTS)
def test_reference_has_timms_state_dict_and_parameters(name):
    model = on_meta(lambda: create_model(name))
    assert key_shapes(model) == timm_keys(name)
    assert n_params(model) == json.loads((TIMM / f"{name}.json").read_text())["num_params"]


@pytest.mark.parametrize("name", timm_facts.quick_or_slow(FACTS, {"skresnet18"}))
def test_reference_gives_timms_logits(name):
    facts = json.loads((TIMM / f"{name}.json").read_text())
    model = create_model(name).eval()
    fill_module(model)
    with torch.no_grad():
        logits = model(recipe_input(facts["input_size"])).numpy()
    expected = np.load(TIMM / f"{name}.out.npy")
    assert logits.shape == expected.shape
    assert relative_error(logits, expected) <= 1e-4


def test_attention_widths_are_make_divisibles():
    """skresnet18: out / 8 to multiples of 16, at least 16; skresnet50: width / 16 to multiples of 8, at
    least 8; skresnext50_32x4d: width / 16 to multiples of 32, at least 32."""
    assert [make_divisible(c / 8, 16) for c in (64, 128, 256, 512)] == [16, 16, 32, 64]
    assert [make_divisible(c / 16, 8) for c in (64, 128, 256, 512)] == [8, 8, 16, 32]
    assert [make_divisible(c / 16, 32) for c in (128, 256, 512, 1024)] == [32, 32, 32, 64]


def test_skresnext50_32x4d_is_timms_arguments():
    """No facts: timm's arguments (cardinality 32, base width 4, rd_ratio 1/16, rd_divisor 32, no input
    split) give 27,479,784 parameters (timm's results table: 27.48M) in 528 state_dict entries."""
    model = on_meta(lambda: create_model("skresnext50_32x4d"))
    shapes = dict(key_shapes(model))
    assert n_params(model) == 27_479_784
    assert len(shapes) == 528
    for stage, (width, attn) in enumerate([(128, 32), (256, 32), (512, 32), (1024, 64)], start=1):
        block = f"layer{stage}.0.conv2"
        for path in (0, 1):  # groups 32, the whole input
            assert shapes[f"{block}.paths.{path}.conv.weight"] == f"{width}x{width // 32}x3x3"
        assert shapes[f"{block}.attn.fc_reduce.weight"] == f"{attn}x{width}x1x1"
        assert shapes[f"{block}.attn.fc_select.weight"] == f"{2 * width}x{attn}x1x1"
        assert shapes[f"layer{stage}.0.conv3.conv.weight"] == f"{width * 2}x{width}x1x1"
    assert shapes["layer1.0.downsample.0.weight"] == "256x64x1x1"
    assert shapes["fc.weight"] == "1000x2048"


def test_split_input_halves_the_paths_inputs():
    """skresnet50's paths each read half the input (groups 1); the second is dilated 2 with padding 2."""
    model = on_meta(lambda: create_model("skresnet50"))
    sk = model.layer2[0].conv2
    assert [tuple(p.conv.weight.shape) for p in sk.paths] == [(128, 64, 3, 3)] * 2
    assert [(p.conv.dilation, p.conv.padding, p.conv.stride) for p in sk.paths] == [
        ((1, 1), (1, 1), (2, 2)),
        ((2, 2), (2, 2), (2, 2)),
    ]
