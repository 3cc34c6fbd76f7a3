"""timm's RegNets (`regnetx_016`, `regnety_016`, `regnety_032`, `regnetz_005`) and `legacy_seresnet18`,
key-exact: each is a bundled spec of the same name.

The four with facts in tests/reference/timm have timm's state_dict keys, parameter count and logits under
the fill recipe. `regnety_032` has none: it is checked against tests/timm_regnet.py, a compact PyTorch
RegNet written from timm's constructor arguments, which is itself checked against the facts of the other
three RegNets. Keys and parameters are read on the meta device; the logits of the small models run in the
quick suite, regnety_032's at its own size with `--zoo` (and at 3x96x96 in the quick suite).
"""

from __future__ import annotations

import pytest
import timm_facts
import torch
from conftest import SPECS
from timm_facts import TIMM, on_meta, recipe_input
from timm_regnet import CFGS, create_model, stage_args

import resdsl

FACTS = ["legacy_seresnet18", "regnetx_016", "regnety_016", "regnetz_005"]
REGNETS = ["regnetx_016", "regnety_016", "regnety_032", "regnetz_005"]
QUICK = {"legacy_seresnet18", "regnety_016", "regnetz_005"}  # SE to a given width; SiLU, no projections


def test_all_are_bundled_and_only_regnety_032_lacks_facts():
    assert set(FACTS) | set(REGNETS) <= set(resdsl.list_models())
    assert [n for n in REGNETS + FACTS if not (TIMM / f"{n}.json").exists()] == ["regnety_032"]


@pytest.mark.parametrize("name", FACTS)
def test_state_dict_parameters_and_input_size_are_timms(name):
    timm_facts.assert_spec_is_timms(resdsl.compile(SPECS / f"{name}.res"), name)


@pytest.mark.parametrize("name", timm_facts.quick_or_slow(FACTS, QUICK))
def test_logits_are_timms(name):
    timm_facts.assert_timms_logits(resdsl.compile(SPECS / f"{name}.res").to_torch(), name)


# -- the compact reference, and regnety_032 -----------------------------------------------------------


def test_reference_widths_are_timms_stages():
    """The widths and depths generate_regnet and adjust_widths_groups_comp give, as the specs write them."""
    assert [(w, d) for w, d, _ in stage_args(CFGS["regnety_032"])] == [(72, 2), (216, 5), (576, 13), (1512, 1)]
    assert [(w, d) for w, d, _ in stage_args(CFGS["regnetz_005"])] == [(16, 1), (40, 4), (104, 9), (256, 7)]


@pytest.mark.parametrize("name", [n for n in REGNETS if n in FACTS])
def test_reference_has_timms_state_dict(name):
    timm_facts.assert_timms_state(on_meta(lambda: create_model(name)), name)


@pytest.mark.parametrize(
    "name", timm_facts.quick_or_slow(["regnetx_016", "regnety_016", "regnetz_005"], {"regnety_016", "regnetz_005"})
)
def test_reference_gives_timms_logits(name):
    timm_facts.assert_timms_logits(create_model(name), name)


def test_regnety_032_is_the_reference():
    """State_dict and parameters (timm's arguments give 19,436,338) on the meta device."""
    net = resdsl.compile(SPECS / "regnety_032.res")
    timm_facts.assert_reference_state(net, on_meta(lambda: create_model("regnety_032")), 19_436_338)


@pytest.mark.parametrize("size", [pytest.param(224, marks=[pytest.mark.slow, pytest.mark.zoo]), 96])
def test_regnety_032_gives_the_references_logits(size):
    net = resdsl.compile(SPECS / "regnety_032.res", overrides={"input": f"3x{size}x{size}"})
    timm_facts.assert_references_logits(net, create_model("regnety_032"))


@pytest.mark.parametrize("name", ["legacy_seresnet18", "regnety_016", "regnetz_005"])
def test_onnxruntime_gives_the_modules_logits(name):
    """Exported with the recipe's weights at 3x64x64: onnxruntime agrees with the generated module (SE to a
    given width, SE with SiLU, blocks without a shortcut, projections after the branch)."""
    timm_facts.assert_onnxruntime_agrees(resdsl.compile(SPECS / f"{name}.res", overrides={"input": "3x64x64"}))


def test_regnet_source_names_timms_modules():
    """The generated classes hold timm's ConvNormAct layout, the add's activation `act3`, the projection last."""
    source = resdsl.compile(SPECS / "regnety_016.res").torch_source
    assert "self.conv3 = ConvNorm(w, w)" in source
    assert "self.act3 = nn.ReLU(inplace=True)" in source
    assert "self.se = SqueezeExcite(w, rd_channels=inp // 4)" in source
    assert source.index("self.conv3 = ConvNorm") < source.index("self.downsample = None")


def test_preactivation_of_an_inner_block_belongs_to_the_outer_block():
    """`--set norm=pre` on RegNetY: the BN and ReLU before each ConvNormAct's conv are the block's own
    (`bn1`, `act1`, ... as timm's PreBottleneck has them), and the projection reads the pre-activated input."""
    net = resdsl.compile(SPECS / "regnety_016.res", overrides={"norm": "pre", "input": "3x32x32"})
    keys = list(net.to_torch().state_dict())
    assert "s1.b1.bn1.weight" in keys and "s1.b1.bn3.weight" in keys
    assert not any(key.startswith("s1.b1.conv1.bn") for key in keys)
    assert "identity = self.downsample(preact)" in net.torch_source


def test_projections_everywhere_stride_as_the_inner_blocks_conv():
    """`--set shortcut=C`: every block has a projection, whose stride is the branch's, given to the inner
    ConvNormAct as `s=stride`: the class writes `stride=stride` (E0211 before inner blocks' strides counted)."""
    net = resdsl.compile(SPECS / "regnety_016.res", overrides={"shortcut": "C", "input": "3x64x64"})
    assert "nn.Conv2d(inplanes, w, 1, stride=stride, bias=False)" in net.torch_source
    model = net.to_torch().eval()
    assert sum(p.numel() for p in model.parameters()) == net.params
    with torch.no_grad():
        assert model(recipe_input((3, 64, 64))).shape == (2, 1000)
