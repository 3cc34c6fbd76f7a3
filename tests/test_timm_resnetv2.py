"""timm's `resnetv2.py`, key-exact: each of its 20 models is a bundled spec of the same name.

For the 17 with facts in tests/reference/timm (timm's state_dict keys, parameter count and logits under
the fill recipe), the generated module has timm's state_dict, parameter count and logits. The other 3
(`resnetv2_50d_gn`, `resnetv2_101d`, `resnetv2_101x1_bit`) are checked against tests/timm_resnetv2.py, a
compact PyTorch ResNetV2 written from timm's source, which is itself checked against every fact here.
Keys and parameter counts are read on the meta device, so every model is checked in the quick run; logits
of one small model per feature run there too, the rest with `--zoo` (conftest). The widest BiT models
(`resnetv2_50x3_bit` … `resnetv2_152x4_bit`, up to 937M parameters at 480x480) are compared with timm's
logits only there, at their own input sizes.
"""

from __future__ import annotations

import numpy as np
import pytest
import timm_facts
from conftest import SPECS
from timm_facts import TIMM, on_meta, relative_error
from timm_resnetv2 import ZOO, create_model, input_size

import resdsl

FACTS = sorted(p.stem for p in TIMM.glob("*.json") if p.stem in ZOO)
WITHOUT_FACTS = sorted(set(ZOO) - set(FACTS))
# One small model per feature, whose logits the quick run checks: basic blocks and BatchNorm, a deep
# stem with average-pool projections, EvoNorm-S0, FRN + TLU, and BiT's weight-standardised convs,
# GroupNorm and zero-padded stem; and of the models without facts, resnetv2_50d_gn.
QUICK = {"resnetv2_18", "resnetv2_50d", "resnetv2_50d_evos", "resnetv2_50d_frn", "resnetv2_50x1_bit", "resnetv2_50d_gn"}


def quick_or_slow(names):
    return timm_facts.quick_or_slow(names, QUICK)


def test_every_model_of_timms_resnetv2_py_is_bundled():
    assert len(ZOO) == 20 and set(ZOO) <= set(resdsl.list_models())
    assert len(FACTS) == 17 and WITHOUT_FACTS == ["resnetv2_101d", "resnetv2_101x1_bit", "resnetv2_50d_gn"]


@pytest.mark.parametrize("name", FACTS)
def test_state_dict_parameters_and_input_size_are_timms(name):
    net = resdsl.compile(SPECS / f"{name}.res")
    assert net.input_shape == input_size(name)
    timm_facts.assert_spec_is_timms(net, name)


@pytest.mark.parametrize("name", quick_or_slow(FACTS))
def test_logits_are_timms(name):
    timm_facts.assert_timms_logits(resdsl.compile(SPECS / f"{name}.res").to_torch(), name)


# -- the compact reference, and the models without facts ------------------------------------------------


@pytest.mark.parametrize("name", FACTS)
def test_reference_has_timms_state_dict(name):
    timm_facts.assert_timms_state(on_meta(lambda: create_model(name)), name)


@pytest.mark.parametrize("name", quick_or_slow(["resnetv2_50d_frn", "resnetv2_50x1_bit", "resnetv2_101d"]))
def test_reference_gives_timms_logits(name):
    """FRN, BiT's convs and norms, and a deep-stemmed 101 (the features of the models without facts)."""
    name = {"resnetv2_101d": "resnetv2_152d"}.get(name, name)  # resnetv2_101d has no facts: its deeper sibling
    timm_facts.assert_timms_logits(create_model(name), name)


@pytest.mark.parametrize("name", WITHOUT_FACTS)
def test_without_facts_state_dict_and_parameters_are_the_references(name):
    net = resdsl.compile(SPECS / f"{name}.res")
    assert net.input_shape == input_size(name)
    timm_facts.assert_reference_state(net, on_meta(lambda: create_model(name)))


@pytest.mark.parametrize("name", quick_or_slow(["resnetv2_50d_gn", "resnetv2_101d", "resnetv2_101x1_bit"]))
def test_without_facts_logits_are_the_references(name):
    """At 3x128x128 rather than the model's own input size (448x448 for resnetv2_101x1_bit)."""
    net = resdsl.compile(SPECS / f"{name}.res", {"input": "3x128x128"})
    timm_facts.assert_references_logits(net, create_model(name))


@pytest.mark.parametrize("name", quick_or_slow(["resnetv2_50d_evos", "resnetv2_50x1_bit", "resnetv2_101d"]))
def test_onnxruntime_gives_the_modules_and_timms_logits(name):
    """EvoNorm-S0, BiT (weight standardisation, GroupNorm, the padded stem) and a deep stem with average-pool
    projections, exported with the recipe's weights: onnxruntime agrees with the generated module."""
    net = resdsl.compile(SPECS / f"{name}.res")
    got = timm_facts.assert_onnxruntime_agrees(net)
    if (TIMM / f"{name}.out.npy").exists():
        assert relative_error(got, np.load(TIMM / f"{name}.out.npy")) <= 1e-4
