"""`policy shortcut = drop` (an add that exists only where its shapes match) and numbered stages in a
group (`blocks.0`): the language features timm's MobileNetV2 needs, on small networks."""

from __future__ import annotations

import torch
from agreement import assert_backends_agree
from conftest import SPECS

import resdsl
from resdsl.weights import recipe

INVERTED = """
block inverted(inp, chs, stride=1, exp=2) {
  conv_pw = conv(inp * exp, k=1); bn1 = batchnorm; act1 = relu6
  conv_dw = conv(inp * exp, k=3, s=stride, groups=inp * exp); bn2 = batchnorm; act2 = relu6
  conv_pwl = conv(chs, k=1); bn3 = batchnorm
  add input
}
network tiny {
  input 3x16x16
  classes 10
  policy norm = none
  policy shortcut = drop
  POLICIES
  stem = conv(8, k=3, s=2)
  blocks.0 = inverted(8, 8) x 2
  blocks.1 = inverted(16, 16) x 3 first(inp=8, stride=2)
  gap
  flatten
  fc = linear(classes)
}
"""


def tiny(policies: str = "", **overrides: str):
    return resdsl.compile(INVERTED.replace("POLICIES", policies), overrides=overrides or None)


def test_only_the_blocks_whose_shapes_match_add():
    net = tiny()
    adds = sorted(n.parent.path for n in net.ir if n.op.kind == "add")
    assert adds == ["blocks.0.0", "blocks.0.1", "blocks.1.1", "blocks.1.2"]
    source = net.torch_source
    assert "def __init__(self, inplanes, inp, chs, stride=1, exp=2, has_skip=False):" in source
    assert "Inverted(8, 8, 16, stride=2)," in source and "Inverted(16, 16, 16, has_skip=True)," in source
    assert "if self.has_skip:\n            out += x" in source
    assert not any(k.startswith("blocks.1.0.downsample") for k in net.to_torch().state_dict())


def test_the_class_is_written_from_an_instance_that_keeps_the_add():
    """blocks.1.0, the template's first use here, drops its add; the class still has it, behind the flag."""
    spec = INVERTED.replace("POLICIES", "").replace("blocks.0 = inverted(8, 8) x 2\n", "")
    source = resdsl.compile(spec.replace("blocks.1 =", "blocks.0 =")).torch_source
    assert "has_skip=False" in source and "Inverted(8, 8, 16, stride=2)," in source


def test_module_and_onnxruntime_agree():
    assert_backends_agree(tiny())


def test_dropped_blocks_are_plain_and_kept_ones_residual():
    """A dropped block computes its branch alone; a kept one adds its input."""
    model = tiny().to_torch().eval()
    x = torch.randn(1, 8, 8, 8)
    kept, dropped = model.blocks[0][0], model.blocks[1][0]
    with torch.no_grad():

        def branch(block, x):
            out = block.act1(block.bn1(block.conv_pw(x)))
            return block.bn3(block.conv_pwl(block.act2(block.bn2(block.conv_dw(out)))))

        torch.testing.assert_close(kept(x), branch(kept, x) + x)
        torch.testing.assert_close(dropped(x), branch(dropped, x))


def test_zero_init_last_zeroes_the_kept_branches_only():
    net = tiny("policy zero_init_last = true")
    starts = recipe(net.ir)
    zeroed = {k for k, s in starts.items() if k.endswith("bn3.weight") and s.bound is None and s.value == 0}
    assert zeroed == {f"blocks.{b}.bn3.weight" for b in ("0.0", "0.1", "1.1", "1.2")}
    model = net.to_torch()
    in_module = {k for k, v in model.state_dict().items() if k.endswith("bn3.weight") and not v.any()}
    assert in_module == zeroed


def test_set_shortcut_drop_on_a_resnet_removes_its_projections():
    """`--set shortcut=drop`: the blocks that project under B lose their add instead."""
    b = resdsl.compile(SPECS / "resnet18.res")
    drop = resdsl.compile(SPECS / "resnet18.res", overrides={"shortcut": "drop"})
    projections = sum(v.numel() for k, v in b.to_torch().named_parameters() if ".downsample." in k)
    assert drop.params == b.params - projections
    adds = [n.parent.path for n in drop.ir if n.op.kind == "add"]
    assert len(adds) == 8 - 3 and "layer2.0" not in adds
    assert "has_skip" in drop.torch_source


def test_numbered_stages_nest_as_timms_blocks():
    net = tiny()
    keys = list(net.to_torch().state_dict())
    assert keys[0] == "stem.weight" and "blocks.1.2.conv_pwl.weight" in keys
    assert "self.blocks = nn.Sequential(\n            nn.Sequential(" in net.torch_source
    assert "blocks.1.2" in net.summary() and "blocks.1" in net.to_dot()
