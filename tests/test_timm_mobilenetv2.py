"""timm's `mobilenetv2_100` and `mobilenetv2_140`, key-exact: each is a bundled spec of the same name.

`mobilenetv2_100` has facts in tests/reference/timm: the generated module has timm's state_dict, parameter
count and logits under the fill recipe. `mobilenetv2_140` has none: it is checked against
tests/timm_mobilenetv2.py, a compact PyTorch MobileNetV2 written from timm's source (with the 1.4 width
multiplier's channel rounding), which is itself checked against every fact of `mobilenetv2_100`.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import timm_facts
import torch
from conftest import SPECS
from recipe import fill_module
from timm_facts import TIMM, key_shapes, on_meta, recipe_input, relative_error, timm_keys
from timm_mobilenetv2 import create_model

import resdsl

NAMES = ["mobilenetv2_100", "mobilenetv2_140"]


def test_both_are_bundled_and_only_100_has_facts():
    assert set(NAMES) <= set(resdsl.list_models())
    assert [n for n in NAMES if (TIMM / f"{n}.json").exists()] == ["mobilenetv2_100"]


def test_mobilenetv2_100_has_timms_state_dict_parameters_and_logits():
    name = "mobilenetv2_100"
    facts = json.loads((TIMM / f"{name}.json").read_text())
    net = resdsl.compile(SPECS / f"{name}.res")
    assert list(net.input_shape) == facts["input_size"]
    assert net.params == facts["num_params"]
    assert key_shapes(on_meta(net.to_torch)) == timm_keys(name)
    model = net.to_torch().eval()
    fill_module(model)
    with torch.no_grad():
        logits = model(recipe_input(facts["input_size"])).numpy()
    assert relative_error(logits, np.load(TIMM / f"{name}.out.npy")) <= 1e-4


def test_reference_has_timms_state_dict_and_logits():
    name = "mobilenetv2_100"
    model = create_model(name).eval()
    assert key_shapes(model) == timm_keys(name)
    assert sum(p.numel() for p in model.parameters()) == json.loads((TIMM / f"{name}.json").read_text())["num_params"]
    fill_module(model)
    with torch.no_grad():
        logits = model(recipe_input((3, 224, 224))).numpy()
    assert relative_error(logits, np.load(TIMM / f"{name}.out.npy")) <= 1e-4


def test_mobilenetv2_140_is_the_reference():
    """State_dict and parameters at its own size; logits at 3x128x128 (quick)."""
    name = "mobilenetv2_140"
    net = resdsl.compile(SPECS / f"{name}.res")
    reference = create_model(name).eval()
    assert key_shapes(on_meta(net.to_torch)) == key_shapes(reference)
    assert net.params == sum(p.numel() for p in reference.parameters()) == 6_108_776
    model = net.to_torch().eval()
    fill_module(model)
    reference.load_state_dict(model.state_dict())  # strict: the same keys and shapes
    x = recipe_input((3, 128, 128))
    with torch.no_grad():
        assert relative_error(model(x).numpy(), reference(x).numpy()) <= 1e-4


@pytest.mark.parametrize("name", NAMES)
def test_onnxruntime_gives_the_modules_logits(name):
    """Exported with the recipe's weights: onnxruntime agrees with the generated module, the blocks without
    a shortcut included, and for mobilenetv2_100 (at its own input) with timm's logits; mobilenetv2_140 at
    3x96x96."""
    exact = (TIMM / f"{name}.out.npy").exists()
    net = resdsl.compile(SPECS / f"{name}.res", overrides=None if exact else {"input": "3x96x96"})
    got = timm_facts.assert_onnxruntime_agrees(net)
    if exact:
        assert relative_error(got, np.load(TIMM / f"{name}.out.npy")) <= 1e-4


@pytest.mark.parametrize("name", NAMES)
def test_diagram_draws_every_block(name):
    dot = resdsl.compile(SPECS / f"{name}.res").to_dot()
    assert "blocks.6" in dot and "blocks.1" in dot
