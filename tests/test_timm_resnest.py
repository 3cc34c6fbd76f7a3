"""timm's ResNeSts (`resnest14d`, `resnest50d`), key-exact: each is a bundled spec of the same name, built
from std/resnest.res; and tests/timm_resnest.py, a compact PyTorch ResNeSt written from timm's source.

Both have facts in tests/reference/timm: the specs and the reference have their state_dict keys, order and
shapes and their parameter counts (read on the meta device), and their logits under the fill recipe
(resnest14d's in the quick suite, resnest50d's with `--zoo`). resnest14d's spec also runs under
onnxruntime at 3x64x64.
"""

from __future__ import annotations

import pytest
import timm_facts
from conftest import SPECS
from timm_facts import on_meta
from timm_resnest import create_model, make_divisible

import resdsl

FACTS = ["resnest14d", "resnest50d"]


@pytest.mark.parametrize("name", FACTS)
def test_reference_has_timms_state_dict_and_parameters(name):
    timm_facts.assert_timms_state(on_meta(lambda: create_model(name)), name)


@pytest.mark.parametrize("name", timm_facts.quick_or_slow(FACTS, {"resnest14d"}))
def test_reference_gives_timms_logits(name):
    timm_facts.assert_timms_logits(create_model(name), name)


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


# -- the bundled specs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FACTS)
def test_spec_has_timms_state_dict_parameters_and_input_size(name):
    timm_facts.assert_spec_is_timms(resdsl.compile(SPECS / f"{name}.res"), name)


@pytest.mark.parametrize("name", timm_facts.quick_or_slow(FACTS, {"resnest14d"}))
def test_spec_gives_timms_logits(name):
    timm_facts.assert_timms_logits(resdsl.compile(SPECS / f"{name}.res").to_torch(), name)


def test_onnxruntime_gives_the_modules_logits():
    """resnest14d exported with the recipe's weights at 3x64x64: onnxruntime agrees with the generated module
    (the radix split, the softmax across the two splits, their weighted sum, the avd pool, the deep stem)."""
    timm_facts.assert_onnxruntime_agrees(resdsl.compile(SPECS / "resnest14d.res", overrides={"input": "3x64x64"}))


def test_resnest_source_has_timms_split_attention():
    """SplitAttn is a class of its own: a grouped conv to both splits, their sum pooled, and a softmax across
    the two splits weighing them; `avd_last` exists only in the strided block's class, after the split
    attention and before conv3 (layer1's block has a projection but no pool)."""
    source = resdsl.compile(SPECS / "resnest14d.res").torch_source
    attn = source[source.index("class SplitAttn(") : source.index("class ResnestBottleneck(")]
    plain = source[source.index("class ResnestBottleneck(") : source.index("class ResnestBottleneckAvd(")]
    strided = source[source.index("class ResnestBottleneckAvd(") : source.index("class Resnest14d(")]
    assert "self.conv = nn.Conv2d(inplanes, c * 2, 3, stride=stride, padding=1, groups=2, bias=False)" in attn
    assert "x1, x2 = act0.chunk(2, 1)" in attn and "out = x1 + x2" in attn
    assert "out = out.unflatten(1, (2, -1)).softmax(1).flatten(1, 2)" in attn
    assert "out = (torch.stack([x1, x2], 1) * out.unflatten(1, (2, -1))).sum(1)" in attn
    assert "self.conv2 = SplitAttn(planes, planes, planes // 2)" in plain and "avd_last" not in plain
    assert "self.avd_last = nn.AvgPool2d(3, stride, padding=1)" in strided
    order = [strided.index(s) for s in ("self.conv2(out)", "self.avd_last(out)", "self.conv3(out)")]
    assert order == sorted(order)
    assert source.count("avd_last") == 2
