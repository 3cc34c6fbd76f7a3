"""The language features timm's `resnetv2.py` needs, each in every backend and against the reference layer
of tests/timm_resnetv2.py: weight-standardised convs (`std_conv`, `policy conv_op`), constant padding
(`pad`), EvoNorm-S0 (`evonorm_s0`), filter response normalization (`frn`), groups of modules named by
module paths (`stem.conv`), and the policies that name and place pre-activation norms
(`norm_name`, `final_norm`, `projection_names`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SPECS
from test_timm_ops import network, node_types, onnx_agrees, shapes
from timm_resnetv2 import EvoNormS0, FrnTlu, StdConv2d

import resdsl
from resdsl.backends.onnx_graph import OPSETS


def x_of(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(2, *shape, generator=torch.Generator().manual_seed(seed)) * 2 + 0.5


def randomise(model: torch.nn.Module) -> None:
    """Parameters away from their initial values, so that scale, shift, v and tau all matter."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() == 1:
                param.uniform_(0.5, 1.5) if name.endswith(("weight", "v")) else param.uniform_(-0.5, 0.5)


# -- std_conv -------------------------------------------------------------------------------------------


def test_std_conv_is_timms_in_every_backend():
    net = network("  c = std_conv(16, k=3, s=2, eps=1e-8, norm=false)\n  relu", "8x11x11")
    conv = next(n for n in net.ir if n.path == "c")
    assert conv.shape == (16, 6, 6) and conv.op.eps == 1e-8
    assert shapes(net)["c.weight"] == (16, 8, 3, 3)
    assert "self.c = StdConv2d(in_chans, 16, 3, stride=2, padding=1, bias=False, eps=1e-08)" in net.torch_source
    assert "3×3 std conv, 16, stride 2" in net.to_dot(level="op") and '"op": "std_conv"' in net.summary("json")
    assert net.macs - 16 * 10 == 16 * 6 * 6 * 8 * 3 * 3  # as a conv's (the standardisation is per filter)
    x = x_of(8, 11, 11)
    model, out = onnx_agrees(net, x)
    reference = StdConv2d(8, 16, 3, stride=2, eps=1e-8)
    reference.load_state_dict(model.c.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model.c(x), reference(x))
        plain = torch.nn.functional.conv2d(x, model.c.weight, stride=2, padding=1)
    assert not torch.allclose(model.c(x), plain, atol=1e-3)  # the filters are standardised


def test_conv_op_policy_standardises_every_managed_conv_and_projection_but_not_norm_false_ones():
    net = resdsl.compile(SPECS / "resnetv2_50x1_bit.res")
    kinds = {n.path: n.op.kind for n in net.ir if n.path}
    assert kinds["stem.conv"] == kinds["stages.0.blocks.0.conv2"] == "std_conv"
    assert kinds["stages.1.blocks.0.downsample.conv"] == "std_conv"
    assert kinds["head.fc"] == "conv"  # `norm=false`: the classifier stays a plain conv, as timm's head
    assert all(n.op.eps == 1e-8 for n in net.ir if n.op.kind == "std_conv")
    projection = "conv=StdConv2d(inplanes, planes * self.expansion, 1, stride=stride, bias=False, eps=1e-08)"
    assert projection in net.torch_source


def test_conv_op_takes_conv_family_ops_only():
    with pytest.raises(resdsl.ResdslError) as caught:
        network("  policy conv_op = batchnorm\n  c = conv(8, k=3)")
    assert caught.value.diagnostics[0].code == "E0113"


# -- pad --------------------------------------------------------------------------------------------------


def test_pad_is_constant_padding_in_every_backend():
    net = network("  c = conv(8, k=3, norm=false)\n  pad = pad(2, value=0.5)\n  pool = maxpool(k=3, s=2, p=0)", "3x9x9")
    pad = next(n for n in net.ir if n.path == "pad")
    assert pad.shape == (8, 13, 13) and pad.op.macs([(8, 9, 9)], (8, 13, 13)) == 0
    assert "self.pad = nn.ConstantPad2d(2, 0.5)" in net.torch_source
    assert "pad 2, value 0.5" in net.to_dot(level="op") and '"op": "pad"' in net.summary("json")
    x = x_of(3, 9, 9)
    model, _ = onnx_agrees(net, x)
    with torch.no_grad():
        padded = model.pad(model.c(x))
    assert padded[..., 0, 0].eq(0.5).all() and torch.equal(padded[..., 2:-2, 2:-2], model.c(x))
    assert "Pad" in node_types(net, 13)


def test_pad_needs_a_non_negative_width():
    with pytest.raises(resdsl.ResdslError) as caught:
        network("  pad(-1)")
    assert caught.value.diagnostics[0].code == "E0108"


# -- evonorm_s0 and frn --------------------------------------------------------------------------------


@pytest.mark.parametrize("act", [True, False])
def test_evonorm_s0_is_timms_in_every_backend(act):
    call = "evonorm_s0(groups=4, eps=1e-3)" if act else "evonorm_s0(group_size=8, act=false)"
    net = network(f"  c = conv(32, k=3, norm=false)\n  n = {call}", "3x7x7")
    extra = {"n.v"} if act else set()
    assert set(shapes(net)) - {"c.weight", "fc.weight", "fc.bias"} == {"n.weight", "n.bias"} | extra
    assert ("EvoNorm-S0" if act else "EvoNorm-S0, no act") in net.to_dot(level="op")
    assert '"op": "evonorm_s0"' in net.summary("json")
    assert net.macs == network("  c = conv(32, k=3, norm=false)", "3x7x7").macs  # a norm costs no MACs
    assert ("EvoNormS0(32, groups=4, eps=0.001)" if act else "EvoNormS0(32, groups=4, act=False)") in net.torch_source
    x = x_of(3, 7, 7)
    model, _ = onnx_agrees(net, x, opsets=(13,))
    randomise(model)
    reference = EvoNormS0(32, apply_act=act, groups=4, eps=1e-3 if act else 1e-5)
    reference.load_state_dict(model.n.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model.n(model.c(x)), reference(model.c(x)))
    onnx_agrees_trained(net, model, x)


@pytest.mark.parametrize("act", [True, False])
def test_frn_is_timms_in_every_backend(act):
    net = network(f"  c = conv(16, k=3, norm=false)\n  n = frn(eps=1e-4{'' if act else ', act=false'})", "3x6x6")
    extra = {"n.tau"} if act else set()
    assert set(shapes(net)) - {"c.weight", "fc.weight", "fc.bias"} == {"n.weight", "n.bias"} | extra
    assert ("FRN + TLU" if act else "FRN") in net.to_dot(level="op") and '"op": "frn"' in net.summary("json")
    assert net.macs == network("  c = conv(16, k=3, norm=false)", "3x6x6").macs
    x = x_of(3, 6, 6)
    model, _ = onnx_agrees(net, x, opsets=(13,))
    randomise(model)
    reference = FrnTlu(16, apply_act=act, eps=1e-4)
    reference.load_state_dict(model.n.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model.n(model.c(x)), reference(model.c(x)))
    onnx_agrees_trained(net, model, x)


def onnx_agrees_trained(net, model, x) -> None:
    """onnxruntime reproduces `model` (with its changed parameters) at every opset, within 1e-4 relative."""
    import onnxruntime as ort

    with torch.no_grad():
        expected = model(x).numpy()
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    for opset in OPSETS:
        session = ort.InferenceSession(net.to_onnx(weights=state, opset=opset).SerializeToString())
        (got,) = session.run(None, {"input": x.numpy()})
        assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max(), opset


def test_a_norm_with_its_own_activation_gets_none_placed_after_it():
    """Under `norm_op = evonorm_s0` (or frn) the norm policy places the norm alone: it is the activation."""
    net = resdsl.compile(SPECS / "resnetv2_50d_evos.res")
    kinds = [n.op.kind for n in net.ir.walk()]
    assert "relu" not in kinds and kinds.count("evonorm_s0") == 2 + 16 * 3 + 1
    source = resdsl.compile(SPECS / "resnetv2_50d_frn.res").torch_source
    # The projection reads the pre-activation: the FRN's output, there being no activation after it.
    assert "preact = self.norm1(x)" in source and "identity = self.downsample(preact)" in source


def test_evonorm_groups_must_divide_the_channels():
    with pytest.raises(resdsl.ResdslError) as caught:
        network("  c = conv(48, k=3)\n  n = evonorm_s0(groups=32)")
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "E0204" and "groups=32 must divide the 48 channels" in diagnostic.message


# -- groups ---------------------------------------------------------------------------------------------

GROUPED = """\
use "std/blocks.res"
network g {{
  input 3x32x32
  classes 10
  policy norm = pre
{policies}
  stem.conv = conv(16, k=3)
  stages.0.blocks = basic(16) x 2
  stages.1.blocks = basic(32) x 2 first(stride=2)
  gap
  head.fc = conv(classes, k=1, bias=true, norm=false)
  flatten
}}
"""


def test_a_module_path_of_several_levels_groups_network_modules():
    net = resdsl.compile(GROUPED.format(policies=""))
    model = net.to_torch()
    assert list(model.state_dict())[:2] == ["stem.conv.weight", "stages.0.blocks.0.bn1.weight"]
    assert isinstance(model.stages, torch.nn.Sequential) and type(model.stem).__name__ == "Group"
    assert model.head.fc.out_channels == 10 and "fc=nn.Conv2d(32, num_classes, 1)," in net.torch_source
    assert net.to_torch()(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    assert resdsl.compile(GROUPED.format(policies=""), {"classes": "7"}).to_torch().head.fc.out_channels == 7


@pytest.mark.parametrize(
    "body, message",
    [
        ("  stem.conv = conv(8, k=3)\n  relu\n  stem.pool = maxpool(k=2)", "group `stem` is already closed"),
        ("  stem.act = relu\n  stem.x = flatten", "only modules can be in a group"),
        ("  stem.0 = conv(8, k=3)", "the last level names the module"),
        ("  stem.conv = conv(8, k=3)\n  stem.conv = conv(8, k=3)", "`stem.conv` is defined twice"),
    ],
)
def test_group_mistakes(body, message):
    with pytest.raises(resdsl.ResdslError) as caught:
        network(body)
    assert message in caught.value.diagnostics[0].message


def test_a_block_cannot_name_a_module_with_several_levels_of_groups():
    """In a block, `convs.0` is a member of the block's group `convs` (tests/test_split_ops.py); groups
    in a block have one level."""
    spec = "block b(c) {\n  stem.x.conv = conv(c, k=3)\n}\nnetwork n {\n  input 3x8x8\n  b(4)\n}\n"
    with pytest.raises(resdsl.ResdslError) as caught:
        resdsl.compile(spec)
    assert caught.value.diagnostics[0].code == "E0124"


# -- naming and placing pre-activation norms ----------------------------------------------------------------


def test_norm_name_final_norm_and_projection_names():
    timm = "  policy norm_name = norm\n  policy projection_names = named\n  policy projection = avgpool"
    keys = list(resdsl.compile(GROUPED.format(policies=timm)).to_torch().state_dict())
    assert "stages.0.blocks.0.norm1.weight" in keys and "norm.weight" in keys
    assert "stages.1.blocks.0.downsample.conv.weight" in keys
    assert keys.index("stages.1.blocks.0.downsample.conv.weight") < keys.index("stages.1.blocks.0.norm1.weight")
    plain = list(resdsl.compile(GROUPED.format(policies="")).to_torch().state_dict())
    assert "bn_final.weight" in plain and "stages.1.blocks.0.downsample.0.weight" in plain
    cifar = resdsl.compile(GROUPED.format(policies="  policy final_norm = false"))
    assert not any("final" in (n.path or "") for n in cifar.ir)  # the CIFAR pre-activation ResNet's ending
    assert [n.op.kind for n in cifar.ir.walk()][-4:] == ["add", "gap", "conv", "flatten"]


def test_named_projections_keep_their_norm_outside_pre_activation():
    post = "  policy norm = post\n  policy norm_name = norm\n  policy projection_names = named"
    net = resdsl.compile(GROUPED.format(policies=post).replace("  policy norm = pre\n", ""))
    paths = {n.path for n in net.ir if n.path}
    assert {"stages.1.blocks.0.downsample.conv", "stages.1.blocks.0.downsample.norm", "stem.norm"} <= paths
    assert "self.downsample = Group(" in net.torch_source and "identity = self.downsample(x)" in net.torch_source


def test_the_language_reference_group_example_compiles_with_timms_keys():
    docs = (SPECS.parent / "docs" / "language.md").read_text()
    example = docs.split("### Groups")[1].split("```")[1]
    net = resdsl.compile(f'use "std/blocks.res"\nnetwork n {{\n  input 3x64x64\n  policy norm = pre\n{example}}}\n')
    keys = list(net.to_torch().state_dict())
    assert keys[0] == "stem.conv.weight" and keys[-2:] == ["head.fc.weight", "head.fc.bias"]
    assert "stages.1.blocks.3.conv3.weight" in keys and "norm.weight" in keys


def test_a_cifar_preactivation_network_without_its_final_norm_runs():
    net = resdsl.compile(GROUPED.format(policies="  policy final_norm = false"))
    assert net.to_torch()(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_a_conv_classifier_in_a_group_is_timms_classifier():
    """`head.fc = conv(classes, k=1, ...)` then `flatten`: get_classifier, reset_classifier and pre_logits
    reach it, as they reach timm's ClassifierHead(use_conv=True)."""
    model = resdsl.compile(GROUPED.format(policies="")).to_torch().eval()
    x = torch.randn(1, 3, 32, 32)
    assert model.get_classifier() is model.head.fc
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (1, 32)
    model.reset_classifier(5)
    assert model(x).shape == (1, 5) and isinstance(model.head.fc, torch.nn.Conv2d)
    model.reset_classifier(0)
    assert model(x).shape == (1, 32)
