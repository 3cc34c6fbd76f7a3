"""timm's `mobilenetv2_100` and `mobilenetv2_140`, key-exact: each is a bundled spec of the same name.

`mobilenetv2_100` has facts in tests/reference/timm: the generated module has timm's state_dict, parameter
count and logits under the fill recipe. `mobilenetv2_140` has none: it is checked against
tests/timm_mobilenetv2.py, a compact PyTorch MobileNetV2 written from timm's source (with the 1.4 width
multiplier's channel rounding), which is itself checked against every fact of `mobilenetv2_100`.
"""

from __future__ import annotations

import numpy as np
import pytest
import timm_facts
from conftest import SPECS
from timm_facts import TIMM, relative_error
from timm_mobilenetv2 import create_model

import resdsl

NAMES = ["mobilenetv2_100", "mobilenetv2_140"]


def test_both_are_bundled_and_only_100_has_facts():
    assert set(NAMES) <= set(resdsl.list_models())
    assert [n for n in NAMES if (TIMM / f"{n}.json").exists()] == ["mobilenetv2_100"]


def test_mobilenetv2_100_has_timms_state_dict_parameters_and_logits():
    name = "mobilenetv2_100"
    net = resdsl.compile(SPECS / f"{name}.res")
    timm_facts.assert_spec_is_timms(net, name)
    timm_facts.assert_timms_logits(net.to_torch(), name)


def test_reference_has_timms_state_dict_and_logits():
    name = "mobilenetv2_100"
    model = create_model(name)
    timm_facts.assert_timms_state(model, name)
    timm_facts.assert_timms_logits(model, name)


def test_mobilenetv2_140_is_the_reference():
    """State_dict and parameters at its own size; logits at 3x128x128 (quick)."""
    name = "mobilenetv2_140"
    timm_facts.assert_reference_state(resdsl.compile(SPECS / f"{name}.res"), create_model(name), 6_108_776)
    net = resdsl.compile(SPECS / f"{name}.res", overrides={"input": "3x128x128"})
    timm_facts.assert_references_logits(net, create_model(name))


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
