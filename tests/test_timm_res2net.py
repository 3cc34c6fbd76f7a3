"""timm's Res2Nets (`res2net50_26w_4s`, `res2net50d`, `res2next50`), key-exact: each is a bundled spec of the
same name, built from std/res2net.res; and tests/timm_res2net.py, a compact PyTorch Res2Net written from
timm's source.

`res2net50_26w_4s` and `res2net50d` have facts in tests/reference/timm: the specs and the reference have
their state_dict keys, order and shapes and their parameter counts (read on the meta device), and their
logits under the fill recipe (res2net50_26w_4s's in the quick suite, res2net50d's with `--zoo`).
`res2next50` has none: the reference's parameter count is worked out from timm's arguments, and the spec is
checked against the reference (keys and parameters on the meta device, logits at 3x96x96 in the quick suite
and at its own size with `--zoo`). res2net50_26w_4s's spec also runs under onnxruntime at 3x64x64.
"""

from __future__ import annotations

import pytest
import timm_facts
import torch
from conftest import SPECS
from timm_facts import key_shapes, on_meta
from timm_res2net import create_model

import resdsl

FACTS = ["res2net50_26w_4s", "res2net50d"]


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", FACTS)
def test_reference_has_timms_state_dict_and_parameters(name):
    timm_facts.assert_timms_state(on_meta(lambda: create_model(name)), name)


@pytest.mark.parametrize("name", timm_facts.quick_or_slow(FACTS, {"res2net50_26w_4s"}))
def test_reference_gives_timms_logits(name):
    timm_facts.assert_timms_logits(create_model(name), name)


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


# -- the bundled specs ----------------------------------------------------------------------------------


def test_all_eight_are_bundled():
    """Res2Net, ResNeSt and SK-ResNet: the eight timm models std/res2net.res, std/resnest.res and
    std/sknet.res build."""
    names = ["res2net50_26w_4s", "res2net50d", "res2next50", "resnest14d", "resnest50d", "skresnet18", "skresnet50"]
    assert set(names + ["skresnext50_32x4d"]) <= set(resdsl.list_models())


@pytest.mark.parametrize("name", FACTS)
def test_spec_has_timms_state_dict_parameters_and_input_size(name):
    timm_facts.assert_spec_is_timms(resdsl.compile(SPECS / f"{name}.res"), name)


@pytest.mark.parametrize("name", timm_facts.quick_or_slow(FACTS, {"res2net50_26w_4s"}))
def test_spec_gives_timms_logits(name):
    timm_facts.assert_timms_logits(resdsl.compile(SPECS / f"{name}.res").to_torch(), name)


def test_res2next50_spec_is_the_reference():
    """No facts: the spec's state_dict (keys, order, shapes) and parameters are the reference's."""
    net = resdsl.compile(SPECS / "res2next50.res")
    timm_facts.assert_reference_state(net, on_meta(lambda: create_model("res2next50")), 24_671_464)


@pytest.mark.parametrize("size", [pytest.param(224, marks=[pytest.mark.slow, pytest.mark.zoo]), 96])
def test_res2next50_spec_gives_the_references_logits(size):
    net = resdsl.compile(SPECS / "res2next50.res", overrides={"input": f"3x{size}x{size}"})
    timm_facts.assert_references_logits(net, create_model("res2next50"))


def test_onnxruntime_gives_the_modules_logits():
    """res2net50_26w_4s exported with the recipe's weights at 3x64x64: onnxruntime agrees with the generated
    module (chunks along the channels, the splits' chain, the concatenation, the first blocks' pool)."""
    timm_facts.assert_onnxruntime_agrees(resdsl.compile(SPECS / "res2net50_26w_4s.res", overrides={"input": "3x64x64"}))


def test_res2net_source_has_timms_groups_and_splits():
    """The generated blocks hold timm's `convs`, `bns` and `acts` as nn.ModuleLists (three, for four
    scales), cut the first conv's output into four splits, and chain them only in the blocks that do not
    start a stage: those add each conv's output to the next split; the first blocks pool the last split."""
    source = resdsl.compile(SPECS / "res2net50_26w_4s.res").torch_source
    first = source[source.index("class Bottle2neckFirst(") : source.index("class Bottle2neck(")]
    chained = source[source.index("class Bottle2neck(") : source.index("class Res2net5026w4s(")]
    for block in (first, chained):
        assert "self.convs = nn.ModuleList(\n            [\n" in block
        assert (
            "self.bns = nn.ModuleList(\n            [\n" in block
            and "self.acts = nn.ModuleList(\n            [\n" in block
        )
        assert block.count("nn.Conv2d(width, width, 3, ") == 3
        assert "sp1, sp2, sp3, sp4 = t1.chunk(4, 1)" in block
        assert "self.convs[0](sp1)" in block and "self.convs[3]" not in block
    assert "pool = self.pool(sp4)" in first and "self.pool" not in chained
    assert "torch.cat([acts_0, acts_1, out, pool], 1)" in first
    assert "out = acts_0 + sp2" in chained and "self.convs[1](out)" in chained
    assert "torch.cat([acts_0, acts_1, out, sp4], 1)" in chained
