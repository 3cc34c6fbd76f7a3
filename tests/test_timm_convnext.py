"""timm's `convnext_atto` and `convnext_tiny`, key-exact: each is a bundled spec of the same name.

`convnext_atto` (conv_mlp=True: LayerNorm2d and 1x1 convs) has facts in tests/reference/timm: the
generated module has timm's state_dict, parameter count and logits under the fill recipe.
`convnext_tiny` (channels-last blocks: permutes, nn.LayerNorm and nn.Linear) has none: it is checked
against tests/timm_convnext.py, a compact PyTorch ConvNeXt written from timm's source, which is itself
checked against every fact of `convnext_atto`.
"""

from __future__ import annotations

import pytest
import timm_facts
import torch
from conftest import SPECS
from timm_convnext import create_model
from timm_facts import TIMM, on_meta, quick_or_slow

import resdsl

NAMES = ["convnext_atto", "convnext_tiny"]


def test_both_are_bundled_and_only_atto_has_facts():
    assert set(NAMES) <= set(resdsl.list_models())
    assert [n for n in NAMES if (TIMM / f"{n}.json").exists()] == ["convnext_atto"]


def test_convnext_atto_has_timms_state_dict_parameters_and_logits():
    name = "convnext_atto"
    net = resdsl.compile(SPECS / f"{name}.res")
    timm_facts.assert_spec_is_timms(net, name)
    assert net.params == 3_695_520
    timm_facts.assert_timms_logits(net.to_torch(), name)


def test_reference_has_timms_state_dict_and_logits():
    name = "convnext_atto"
    model = create_model(name)
    timm_facts.assert_timms_state(model, name)
    timm_facts.assert_timms_logits(model, name)


def test_convnext_tiny_has_the_references_state_dict_and_timms_parameters():
    name = "convnext_tiny"
    net = resdsl.compile(SPECS / f"{name}.res")
    timm_facts.assert_reference_state(net, on_meta(lambda: create_model(name)), 28_589_128)  # timm's count


@pytest.mark.parametrize("size", quick_or_slow([64, 224], {64}))
def test_convnext_tiny_gives_the_references_logits(size):
    """The recipe's weights in both; 3x64x64 in the suite (the last stage at 2x2), 224 with --zoo."""
    name = "convnext_tiny"
    net = resdsl.compile(SPECS / f"{name}.res", overrides={"input": f"3x{size}x{size}"})
    timm_facts.assert_references_logits(net, create_model(name))


@pytest.mark.parametrize("name", NAMES)
def test_onnxruntime_gives_the_modules_logits(name):
    """Exported with the recipe's weights at 3x64x64: onnxruntime agrees with the generated module, the
    channels-last blocks of convnext_tiny included."""
    net = resdsl.compile(SPECS / f"{name}.res", overrides={"input": "3x64x64"})
    timm_facts.assert_onnxruntime_agrees(net)


@pytest.mark.parametrize("name", NAMES)
def test_model_api_reaches_the_head(name):
    """forward_head(pre_logits=True) stops after `head.norm`; the classifier is `head.fc`."""
    model = resdsl.create_model(name, input=(3, 64, 64)).eval()
    assert model.get_classifier() is model.head.fc
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        features = model.forward_features(x)
        pre = model.forward_head(features, pre_logits=True)
        assert torch.allclose(model.head.fc(pre), model(x), atol=1e-5)
    model.reset_classifier(10)
    assert model(x).shape == (1, 10)


@pytest.mark.parametrize("name", NAMES)
def test_diagram_draws_every_stage(name):
    dot = resdsl.compile(SPECS / f"{name}.res").to_dot()
    assert "stages.3" in dot and "LayerNorm" in dot
