"""timm's SK-ResNets (`skresnet18`, `skresnet50`, `skresnext50_32x4d`), key-exact: each is a bundled spec of
the same name, built from std/sknet.res; and tests/timm_sknet.py, the compact SK-ResNet reference.

skresnet18 and skresnet50 have facts in tests/reference/timm: the specs and the reference have their
state_dict keys (read on the meta device), parameter count and logits under the fill recipe (skresnet50's
only with `--zoo`). skresnext50_32x4d has none: the reference's parameter count and the shapes that tell its
selective kernels apart (grouped paths reading the whole input, attention widths rounded to multiples of 32)
are the ones timm's constructor arguments give, and the spec is checked against the reference (keys and
parameters on the meta device, logits at 3x96x96 in the quick suite and at its own size with `--zoo`).
skresnet18's spec also runs under onnxruntime at 3x64x64.
"""

from __future__ import annotations

import pytest
import timm_facts
import torch
from conftest import SPECS
from timm_facts import key_shapes, on_meta
from timm_sknet import create_model, make_divisible

import resdsl

FACTS = ["skresnet18", "skresnet50"]


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", FACTS)
def test_reference_has_timms_state_dict_and_parameters(name):
    timm_facts.assert_timms_state(on_meta(lambda: create_model(name)), name)


@pytest.mark.parametrize("name", timm_facts.quick_or_slow(FACTS, {"skresnet18"}))
def test_reference_gives_timms_logits(name):
    timm_facts.assert_timms_logits(create_model(name), name)


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


# -- the bundled specs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FACTS)
def test_spec_has_timms_state_dict_parameters_and_input_size(name):
    timm_facts.assert_spec_is_timms(resdsl.compile(SPECS / f"{name}.res"), name)


@pytest.mark.parametrize("name", timm_facts.quick_or_slow(FACTS, {"skresnet18"}))
def test_spec_gives_timms_logits(name):
    timm_facts.assert_timms_logits(resdsl.compile(SPECS / f"{name}.res").to_torch(), name)


def test_skresnext50_32x4d_spec_is_the_reference():
    """No facts: the spec's state_dict (keys, order, shapes) and parameters are the reference's."""
    net = resdsl.compile(SPECS / "skresnext50_32x4d.res")
    timm_facts.assert_reference_state(net, on_meta(lambda: create_model("skresnext50_32x4d")), 27_479_784)


@pytest.mark.parametrize("size", [pytest.param(224, marks=[pytest.mark.slow, pytest.mark.zoo]), 96])
def test_skresnext50_32x4d_spec_gives_the_references_logits(size):
    net = resdsl.compile(SPECS / "skresnext50_32x4d.res", overrides={"input": f"3x{size}x{size}"})
    timm_facts.assert_references_logits(net, create_model("skresnext50_32x4d"))


def test_onnxruntime_gives_the_modules_logits():
    """skresnet18 exported with the recipe's weights at 3x64x64: onnxruntime agrees with the generated module
    (the input split between the paths, the softmax across them, their weighted sum)."""
    timm_facts.assert_onnxruntime_agrees(resdsl.compile(SPECS / "skresnet18.res", overrides={"input": "3x64x64"}))


def test_sknet_source_has_timms_paths_and_attention():
    """The selective kernel is a class of its own holding timm's `paths` (an nn.ModuleList of two
    ConvNormActs, the second dilated 2) and `attn` (an nn.ModuleDict, called by name): skresnet18's paths
    read one half of the input each, skresnext50_32x4d's the whole input in 32 groups; a softmax across the
    two paths weighs them."""
    source = resdsl.compile(SPECS / "skresnet18.res").torch_source
    sk = source[source.index("class SelectiveKernel(") : source.index("class ConvNorm(")]
    assert "self.paths = nn.ModuleList(\n            [\n" in sk
    assert "ConvNormAct(inplanes // 2, c, k=3, s=stride, groups=groups, dilation=2)," in sk
    assert "self.attn = nn.ModuleDict(\n            {\n" in sk
    assert '"fc_reduce": nn.Conv2d(c, rd, 1, bias=False),' in sk
    assert '"fc_select": nn.Conv2d(rd, c * 2, 1, bias=False),' in sk
    assert "x1, x2 = x.chunk(2, 1)" in sk
    assert "paths_0 = self.paths[0](x1)" in sk and "paths_1 = self.paths[1](x2)" in sk
    assert "out = self.attn.fc_reduce(out)" in sk
    assert "out = out.unflatten(1, (2, -1)).softmax(1).flatten(1, 2)" in sk
    assert "out = (torch.stack([paths_0, paths_1], 1) * out.unflatten(1, (2, -1))).sum(1)" in sk
    assert "self.conv1 = SelectiveKernel(inplanes, planes, rd, stride=stride)" in source

    whole = resdsl.compile(SPECS / "skresnext50_32x4d.res").torch_source
    assert "paths_0 = self.paths[0](x)" in whole and "paths_1 = self.paths[1](x)" in whole
    assert ".chunk(" not in whole
    assert "self.conv2 = SelectiveKernelWhole(width, width, rd, stride=stride, groups=cardinality)" in whole
