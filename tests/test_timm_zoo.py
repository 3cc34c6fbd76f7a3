"""timm's ResNet zoo, key-exact: each of the 80 models of timm's `resnet.py` is a bundled spec of the same name.

For the 64 with facts in tests/reference/timm (timm's state_dict keys, parameter count and logits under
the fill recipe), the generated module has timm's state_dict, parameter count and logits. The other 16
are checked against tests/timm_resnet.py, a compact PyTorch ResNet written from timm's source, which is
itself checked against every fact here. Key layouts and parameter counts are read on the meta device, so
every model is checked in the quick run; logits of one small model per feature run there too, the rest
with `--zoo` (conftest).
"""

from __future__ import annotations

import numpy as np
import pytest
import timm_facts
from conftest import SPECS
from timm_facts import TIMM, on_meta, relative_error
from timm_resnet import ZOO, create_model, input_size

import resdsl

FACTS = sorted(p.stem for p in TIMM.glob("*.json") if p.stem in ZOO)  # the other families have tests of their own
WITHOUT_FACTS = sorted(set(ZOO) - set(FACTS))  # timm keeps these back; the compact reference stands in
# One small model per feature, whose logits the quick run checks: tiered and deep stems, basic blocks,
# SE with groups, ECA, a pruned network, blur and average-pool anti-aliasing, GroupNorm, ResNet-RS.
QUICK = {
    "resnet14t",
    "resnet18d",
    "seresnext26t_32x4d",
    "ecaresnet26t",
    "ecaresnet50d_pruned",
    "resnetblur18",
    "resnetaa34d",
    "resnet50_gn",
    "resnetrs50",
    # without facts: the compact reference's logits
    "resnet10t",
    "resnet50s",
    "seresnet34",
    "ecaresnext50t_32x4d",
    "resnetblur101d",
}


def quick_or_slow(names):
    return timm_facts.quick_or_slow(names, QUICK)


def test_every_model_of_timms_resnet_py_is_bundled():
    assert len(ZOO) == 80 and set(ZOO) <= set(resdsl.list_models())
    assert set(FACTS) <= set(ZOO) and len(WITHOUT_FACTS) == 16


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


@pytest.mark.parametrize("name", quick_or_slow(["ecaresnet50d_pruned", "resnetblur50d", "resnetrs50", "resnet101s"]))
def test_reference_gives_timms_logits(name):
    """The features the models without facts use (pruning, ECA, blur, average-pool downsampling, deep
    stems of width 32 and 64, SE of ratio 1/4, a replaced stem pool), against timm's own logits."""
    timm_facts.assert_timms_logits(create_model(name), name)


@pytest.mark.parametrize("name", WITHOUT_FACTS)
def test_without_facts_state_dict_and_parameters_are_the_references(name):
    net = resdsl.compile(SPECS / f"{name}.res")
    assert net.input_shape == input_size(name)
    timm_facts.assert_reference_state(net, on_meta(lambda: create_model(name)))


@pytest.mark.parametrize("name", quick_or_slow(WITHOUT_FACTS))
def test_without_facts_logits_are_the_references(name):
    """At 3x128x128 rather than the model's own input size: the same layers, a twelfth of the time and
    memory of the largest ones at theirs."""
    net = resdsl.compile(SPECS / f"{name}.res", {"input": "3x128x128"})
    timm_facts.assert_references_logits(net, create_model(name))


# -- ONNX ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["resnet14t", "ecaresnet26t", "resnetblur18", "resnetaa34d", pytest.param("resnetrs101", marks=pytest.mark.slow)],
)
def test_onnxruntime_gives_the_modules_and_timms_logits(name):
    """A deep stem, ECA, blur pooling, average-pool anti-aliasing and ResNet-RS, exported with the recipe's
    weights: onnxruntime agrees with the generated module, and both with timm."""
    net = resdsl.compile(SPECS / f"{name}.res")
    got = timm_facts.assert_onnxruntime_agrees(net)
    assert relative_error(got, np.load(TIMM / f"{name}.out.npy")) <= 1e-4
