"""The language features timm's ConvNeXt needs, each in every backend: `layernorm` in both memory layouts
(timm's LayerNorm2d on N×C×H×W, nn.LayerNorm channels-last and on flat features), `layer_scale` (a block's
bare `gamma` parameter), `channels_last` / `channels_first` (the permutes), and `linear` over the channels of
a channels-last feature map. MACs are checked by hand arithmetic; ONNX by onnxruntime in every opset."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_timm_ops import network, onnx_agrees, shapes

import resdsl
from resdsl.diagnostics import ResdslError

FC = 10 * 8  # the `network` helper's classifier on 8 pooled channels


def x_of(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(2, *shape, generator=torch.Generator().manual_seed(seed)) * 2 + 0.5


def randomise(model: torch.nn.Module) -> None:
    """1-D parameters away from their initial values, so that every scale and shift matters."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() == 1:
                param.uniform_(0.5, 1.5) if not name.endswith("bias") else param.uniform_(-0.5, 0.5)


# -- layernorm ------------------------------------------------------------------------------------------


def test_layernorm_channels_first_is_timms_layernorm2d_in_every_backend():
    net = network("  n = layernorm", "8x10x10")
    assert shapes(net) == {"n.weight": (8,), "n.bias": (8,), "fc.weight": (10, 8), "fc.bias": (10,)}
    assert "self.n = LayerNorm2d(in_chans, eps=1e-06)" in net.torch_source
    assert "class LayerNorm2d(nn.LayerNorm):" in net.torch_source
    assert "LayerNorm" in net.to_dot(level="op") and '"op": "layernorm"' in net.summary("json")
    assert net.macs == FC  # a norm counts no MACs, as torchvision counts
    assert net.params == 8 + 8 + 10 * 8 + 10
    x = x_of(8, 10, 10)
    model, _ = onnx_agrees(net, x)
    with torch.no_grad():
        model.n.weight.uniform_(0.5, 1.5)
        model.n.bias.uniform_(-0.5, 0.5)
        expected = F.layer_norm(x.permute(0, 2, 3, 1), (8,), model.n.weight, model.n.bias, 1e-6).permute(0, 3, 1, 2)
        torch.testing.assert_close(model.n(x), expected)
    onnx_agrees_with(net, model, x)


def test_layernorm_is_a_norm_policy_value():
    """`policy norm_op = layernorm`: LayerNorm2d wherever the norm policy puts BatchNorm, projections included,
    with BatchNorm's parameter count (a scale and a shift per channel) and no running statistics."""
    from conftest import SPECS

    net = resdsl.compile(SPECS / "resnet18.res", {"norm_op": "layernorm", "input": "3x32x32", "classes": "10"})
    assert net.params == resdsl.compile(SPECS / "resnet18.res", {"input": "3x32x32", "classes": "10"}).params
    keys = list(net.to_torch().state_dict())
    assert "layer2.0.downsample.1.weight" in keys and not any("running" in k for k in keys)
    source = net.torch_source
    assert "self.bn1 = LayerNorm2d(planes, eps=1e-06)" in source
    assert "nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), LayerNorm2d(planes, eps=1e-06)" in source
    model = net.to_torch().eval()
    randomise(model)
    onnx_agrees_with(net, model, x_of(3, 32, 32))


def onnx_agrees_with(net, model, x):
    """onnxruntime on `model`'s own (randomised) weights, in every opset."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    from resdsl.backends.onnx_graph import OPSETS

    with torch.no_grad():
        expected = model(x).numpy()
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    for opset in OPSETS:
        proto = net.to_onnx(weights=state, opset=opset)
        onnx.checker.check_model(proto, full_check=True)
        session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        (got,) = session.run(None, {"input": x.numpy()})
        assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max(), f"opset {opset}"


def test_layernorm_channels_last_and_on_flat_features_is_nn_layernorm():
    net = resdsl.compile(
        "network n {\n  input 8x6x6\n  channels_last\n  a = layernorm(eps=1e-5)\n  channels_first\n"
        "  gap\n  flatten\n  b = layernorm\n  fc = linear(10)\n}\n"
    )
    source = net.torch_source
    assert "self.a = nn.LayerNorm(in_chans)" in source and "self.b = nn.LayerNorm(in_chans, eps=1e-06)" in source
    assert "x = x.permute(0, 2, 3, 1)" in source and "x = x.permute(0, 3, 1, 2)" in source
    assert net.macs == FC and net.params == 4 * 8 + FC + 10
    x = x_of(8, 6, 6)
    model = net.to_torch().eval()
    randomise(model)
    with torch.no_grad():
        pooled = F.layer_norm(x.permute(0, 2, 3, 1), (8,), model.a.weight, model.a.bias, 1e-5).mean((1, 2))
        expected = model.fc(F.layer_norm(pooled, (8,), model.b.weight, model.b.bias, 1e-6))
        torch.testing.assert_close(model(x), expected)
    onnx_agrees_with(net, model, x)


# -- layer_scale ----------------------------------------------------------------------------------------


def test_layer_scale_is_a_bare_gamma_parameter_in_every_backend():
    net = network("  gamma = layer_scale(0.5)", "8x5x5")
    assert list(shapes(net)) == ["gamma", "fc.weight", "fc.bias"] and shapes(net)["gamma"] == (8,)
    source = net.torch_source
    assert "self.gamma = nn.Parameter(0.5 * torch.ones(in_chans))" in source
    assert "x = x.mul(self.gamma.reshape(1, -1, 1, 1))" in source
    assert "layer scale" in net.to_dot(level="op") and '"op": "layer_scale"' in net.summary("json")
    assert net.macs == FC and net.params == 8 + FC + 10
    model = net.to_torch().eval()
    assert torch.equal(model.gamma, torch.full((8,), 0.5))
    randomise(model)
    x = x_of(8, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.fc((x * model.gamma.view(1, -1, 1, 1)).mean((2, 3))))
    onnx_agrees_with(net, model, x)


def test_layer_scale_leads_its_blocks_state_as_pytorch_orders_parameters():
    net = resdsl.compile(
        "network n {\n  input 8x5x5\n  policy norm = none\n  layer1 = b(8) x 2\n  gap\n  flatten\n"
        "  fc = linear(10)\n}\nblock b(c) {\n  conv1 = conv(c, k=3)\n  gamma = layer_scale\n  add input\n}\n"
    )
    keys = list(shapes(net))
    assert keys[:3] == ["layer1.0.gamma", "layer1.0.conv1.weight", "layer1.1.gamma"]
    assert keys == list(net.to_torch().state_dict())
    assert net.to_torch().layer1[0].gamma[0].item() == pytest.approx(1e-6)  # timm's ls_init_value


# -- channels_last, channels_first, and linear over channels ---------------------------------------------


def test_linear_over_channels_of_a_channels_last_map_in_every_backend():
    net = network("  channels_last\n  fc1 = linear(12)\n  act = gelu\n  fc2 = linear(8)\n  channels_first", "8x5x5")
    fc1 = next(n for n in net.ir if n.path == "fc1")
    assert fc1.shape == (12, 5, 5) and fc1.channels_last
    assert shapes(net)["fc1.weight"] == (12, 8) and shapes(net)["fc2.weight"] == (8, 12)
    source = net.torch_source
    assert "self.fc1 = nn.Linear(in_chans, 12)" in source and "x = x.permute(0, 3, 1, 2)" in source
    assert "to N×H×W×C" in net.to_dot(level="op") and "to N×C×H×W" in net.to_dot(level="op")
    # One MAC per weight per position: 12·8 and 8·12 weights at 5·5 positions, then the classifier.
    assert net.macs == 12 * 8 * 25 + 8 * 12 * 25 + FC
    model = net.to_torch().eval()
    randomise(model)
    x = x_of(8, 5, 5)
    with torch.no_grad():  # the same as 1×1 convs with the linear layers' weights
        hidden = F.gelu(F.conv2d(x, model.fc1.weight[:, :, None, None], model.fc1.bias))
        out = F.conv2d(hidden, model.fc2.weight[:, :, None, None], model.fc2.bias)
        torch.testing.assert_close(model(x), model.fc(out.mean((2, 3))), atol=1e-5, rtol=1e-5)
    onnx_agrees_with(net, model, x)


def test_permutes_count_no_macs_and_keep_shapes():
    net = network("  channels_last\n  channels_first", "8x5x5")
    assert [n.shape for n in net.ir if n.op.kind.startswith("channels")] == [(8, 5, 5), (8, 5, 5)]
    assert net.macs == FC and net.params == FC + 10


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ("  channels_last\n  conv(8, k=3)\n  channels_first", "E0213", "needs a channels-first (N×C×H×W) input"),
        ("  channels_first", "E0213", "`channels_first` needs a channels-last"),
        ("  channels_last\n  channels_last\n  channels_first", "E0213", "`channels_last` needs a channels-first"),
        ("  a = relu\n  channels_last\n  add a\n  channels_first", "E0213", "operands in one layout"),
        ("  channels_last\n  gamma = layer_scale\n  channels_first", "E0213", "`gamma` needs a channels-first"),
        ("  f = linear(4)", "E0207", "`f` needs a flat or channels-last input, got the channels-first 8×5×5"),
    ],
)
def test_layout_mistakes_are_located_errors(body, code, message):
    with pytest.raises(ResdslError) as caught:
        network(body, "8x5x5")
    error = caught.value.diagnostics[0]
    assert error.code == code and message in error.message and error.span is not None


def test_a_network_may_not_end_channels_last():
    with pytest.raises(ResdslError) as caught:
        resdsl.compile("network n {\n  input 8x5x5\n  channels_last\n}\n")
    error = caught.value.diagnostics[0]
    assert error.code == "E0213" and "ends on a channels-last" in error.message


def test_a_block_whose_layernorm_sees_both_layouts_cannot_be_one_class():
    spec = (
        "network n {\n  input 8x8x8\n  a = ln_block()\n  channels_last\n  b = ln_block()\n  channels_first\n"
        "  gap\n  flatten\n  fc = linear(10)\n}\nblock ln_block() {\n  norm = layernorm\n}\n"
    )
    with pytest.raises(ResdslError) as caught:
        resdsl.compile(spec)
    error = caught.value.diagnostics[0]
    assert error.code == "E0211" and "channels-first feature map in one use" in error.message
    same = spec.replace("  b = ln_block()\n", "  b = relu\n")  # one layout in every use: fine
    assert resdsl.compile(same).params == 16 + 90


@pytest.mark.parametrize("call", ["layer_scale(init=0)", "layernorm(eps=0)", "layernorm(groups=2)"])
def test_bad_arguments_of_the_new_ops_are_located_errors(call):
    with pytest.raises(ResdslError) as caught:
        network(f"  x1 = {call}", "8x5x5")
    assert caught.value.diagnostics[0].code in ("E0108", "E0102") and caught.value.diagnostics[0].span is not None


@pytest.mark.parametrize(
    ("body", "code"),
    [("  s = seq {\n    relu\n    layer_scale\n  }", "E0123"), ("  head.gamma = layer_scale", "E0124")],
)
def test_a_layer_scale_is_a_blocks_or_the_networks_parameter_not_a_seq_or_group_member(body, code):
    with pytest.raises(ResdslError) as caught:
        network(body, "8x5x5")
    assert caught.value.diagnostics[0].code == code


def test_init_trunc_normal_is_timms_convnext_init():
    """`policy init = trunc_normal` (the bundled ConvNeXts): convs and linear layers start from N(0, 0.02²),
    biases at zero, norms at γ = 1 and β = 0; the default `he` keeps the ResNets' He-normal convs."""
    from conftest import SPECS

    net = resdsl.compile(SPECS / "convnext_atto.res", {"input": "3x32x32"})
    assert net.ir.policies.init == "trunc_normal"
    torch.manual_seed(0)
    model = net.to_torch()
    with torch.no_grad():
        weights = torch.cat([m.weight.flatten() for m in model.modules() if isinstance(m, torch.nn.Conv2d)])
        biases = torch.cat([m.bias for m in model.modules() if isinstance(m, torch.nn.Conv2d)])
        assert abs(float(weights.std()) - 0.02) < 0.001 and float(weights.abs().max()) < 0.2
        assert float(biases.abs().max()) == 0.0 and float(model.head.fc.bias.abs().max()) == 0.0
        assert abs(float(model.head.fc.weight.std()) - 0.02) < 0.002
        assert all(float(m.weight.min()) == 1.0 for m in model.modules() if isinstance(m, torch.nn.LayerNorm))
    assert "nn.init.trunc_normal_(m.weight, std=0.02)" in net.torch_source
    he = resdsl.compile(SPECS / "convnext_atto.res", {"input": "3x32x32", "init": "he"})
    assert "kaiming_normal_" in he.torch_source and "trunc_normal_" not in he.torch_source
