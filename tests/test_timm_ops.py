"""The ops timm's ResNet zoo needs, each against a reference written here from timm's (or PyTorch's) behaviour.

timm itself is not imported (it does not install beside this torch): each
reference below restates what timm's source does. Every op is checked in
every backend: the IR and its shape rule, the state layout (timm's keys), the
generated module against the reference, both PyTorch forms of a parameterless
op (module and functional), the diagram, the summary, and onnxruntime against
the generated module at several opsets.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import SPECS
from recipe import fill_module
from torch import nn
from torch.nn import functional as F

import resdsl
from resdsl.backends.onnx_graph import OPSETS
from resdsl.ops import KINDS, SPEC_OPS
from resdsl.ops.base import Op
from resdsl.weights import layout

TIMM = Path(__file__).resolve().parent / "reference" / "timm"


def network(body: str, input_shape: str = "8x10x10") -> resdsl.Compiled:
    """A network of `body`'s statements between an input and a 10-way classifier."""
    return resdsl.compile(f"network n {{\n  input {input_shape}\n{body}\n  gap\n  flatten\n  fc = linear(10)\n}}\n")


def onnx_agrees(net, x: torch.Tensor, opsets=OPSETS, seed: int = 0) -> tuple[nn.Module, np.ndarray]:
    """The generated module (eval mode) on `x`, and onnxruntime's output equal to it within 1e-4 relative.

    Each opset's model passes ONNX's full check (its shape inference agrees
    with the shapes the backend declares); returns the module and its output.
    """
    torch.manual_seed(seed)
    model = net.to_torch().eval()
    with torch.no_grad():
        expected = model(x).numpy()
    state = {k: v.numpy() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    for opset in opsets:
        proto = net.to_onnx(weights=state, opset=opset)
        onnx.checker.check_model(proto, full_check=True)
        session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        (got,) = session.run(None, {"input": x.numpy()})
        scale = np.abs(expected).max()
        assert np.abs(got - expected).max() <= 1e-4 * scale, f"opset {opset}"
    return model, expected


def timm_keys(model: str) -> dict[str, tuple[int, ...]]:
    """timm's state_dict keys and shapes for `model`, in its order (tests/reference/timm)."""
    rows = (TIMM / f"{model}.keys.tsv").read_text().splitlines()[1:]
    rows = [row.split("\t") for row in rows]
    return {key: () if shape == "scalar" else tuple(int(d) for d in shape.split("x")) for key, shape, _ in rows}


def shapes(net) -> dict[str, tuple[int, ...]]:
    return {key: shape for key, (shape, _) in layout(net.ir).items()}


def recipe_input(shape: list[int], batch: int = 2) -> torch.Tensor:
    """The reference recipe's input: x[j] = sin(0.3 j), as tests/reference/timm's logits were computed."""
    n = batch * math.prod(shape)
    return torch.from_numpy(np.sin(0.3 * np.arange(n, dtype=np.float64)).astype(np.float32).reshape(batch, *shape))


def assert_timm_exact(name: str, net: resdsl.Compiled) -> nn.Module:
    """timm's `name`, exactly: state_dict keys, order and shapes, parameter count, and logits under the recipe."""
    facts = json.loads((TIMM / f"{name}.json").read_text())
    assert list(shapes(net).items()) == list(timm_keys(name).items()) and net.params == facts["num_params"]
    model = net.to_torch().eval()
    fill_module(model)
    with torch.no_grad():
        logits = model(recipe_input(facts["input_size"])).numpy()
    expected = np.load(TIMM / f"{name}.out.npy")
    assert np.abs(logits - expected).max() / np.abs(expected).max() <= 1e-4
    return model


def with_policy(spec: str, name: str, policy: str) -> str:
    """The text of bundled spec `spec`, renamed `name`, with one more policy line."""
    text = (SPECS / f"{spec}.res").read_text()
    return text.replace(f"network {spec} {{", f"network {name} {{\n  policy {policy}")


def node_types(net, opset: int) -> list[str]:
    return [n.op_type for n in net.to_onnx(opset=opset).graph.node]


class LiteralWriter:
    """A TorchWriter for one op outside a network: attributes are literals, the input has `channels` channels."""

    def __init__(self, op: Op, channels: int, inplace: bool = False):
        self.op, self.channels, self._inplace = op, channels, inplace

    def attr(self, name: str) -> str:
        return repr(getattr(self.op, name))

    stored = attr

    def in_channels(self) -> str:
        return repr(self.channels)

    def inplace(self) -> bool:
        return self._inplace

    def channels_last(self) -> bool:
        return False

    def rank(self) -> int:
        return 3

    def helper(self, name: str) -> str:
        return name  # helper classes keep their own names here


def both_forms(
    op: Op, x: torch.Tensor, training: bool = False, seed: int = 0, inplace: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """What `op` computes on `x` written as a module (`torch_module`, in place where the op may be) and as a
    function (`torch_call`). Each runs from the same seed, on its own copy of `x`.
    """
    scope: dict = {"torch": torch, "nn": nn, "F": F}
    for source in op.torch_helpers().values():
        exec(source, scope)
    writer = LiteralWriter(op, x.shape[1], inplace)
    module = eval(op.torch_module(writer), scope).train(training)
    torch.manual_seed(seed)
    as_module = module(x.clone())
    torch.manual_seed(seed)
    as_call = eval(op.torch_call(writer, ["x"]), scope | {"x": x.clone(), "self": SimpleNamespace(training=training)})
    return as_module, as_call


# Values for the arguments without defaults.
REQUIRED_ARGS = {"maxpool": {"kernel": 3, "stride": 2}, "avgpool": {"kernel": 3, "stride": 2}, "drop_path": {"p": 0.2}}


def both_written(cls: type[Op]) -> bool:
    return cls.torch_module is not Op.torch_module and cls.torch_call is not Op.torch_call


def test_parameterless_ops_have_a_module_and_a_functional_form_that_agree():
    """Activations and pools are modules, as timm holds them, and keep a functional form: the two agree."""
    assert {
        "relu",
        "relu6",
        "gelu",
        "silu",
        "hard_swish",
        "sigmoid",
        "maxpool",
        "avgpool",
        "gap",
        "blurpool",
        "drop_path",
    } <= {  # fmt: skip
        kind for kind, cls in SPEC_OPS.items() if both_written(cls)
    }
    x = torch.randn(2, 8, 10, 10) * 4
    for kind, cls in sorted(SPEC_OPS.items()):
        if not both_written(cls):
            continue
        op = cls(**REQUIRED_ARGS.get(kind, {}))
        for inplace in (False, True):
            as_module, as_call = both_forms(op, x, inplace=inplace)
            torch.testing.assert_close(as_module, as_call, msg=kind, rtol=0, atol=0)


# -- activations ---------------------------------------------------------------------------------------------------

# The module each activation is, here where it may work in place (its operand is a bare conv's output).
MODULES = {"relu6": "nn.ReLU6(inplace=True)", "gelu": "nn.GELU()", "silu": "nn.SiLU(inplace=True)",
           "hard_swish": "nn.Hardswish(inplace=True)"}  # fmt: skip
ACTIVATIONS = {"relu6": F.relu6, "gelu": F.gelu, "silu": F.silu, "hard_swish": F.hardswish, "sigmoid": torch.sigmoid,
               "relu": F.relu}  # fmt: skip


@pytest.mark.parametrize("kind", ["relu6", "gelu", "silu", "hard_swish"])
def test_activation_in_every_backend(kind):
    net = network(f"  c = conv(8, k=3, norm=false)\n  {kind}")
    (node,) = [n for n in net.ir.walk() if n.op.kind == kind]
    assert node.shape == (8, 10, 10) and node.path == kind  # elementwise; a module, named after its op
    assert f"self.{kind} = {MODULES[kind]}" in net.torch_source
    label = KINDS[kind]().label()
    assert label in net.to_dot(level="op") and f'"op": "{kind}"' in net.summary("json")
    assert net.macs == network("  c = conv(8, k=3, norm=false)").macs  # an activation costs no MACs
    x = torch.randn(2, 8, 10, 10, generator=torch.Generator().manual_seed(1)) * 8  # past ReLU6's 6
    model, expected = onnx_agrees(net, x)
    with torch.no_grad():  # the network is conv → activation → head: compare with PyTorch's own function
        reference = model.fc(ACTIVATIONS[kind](model.c(x)).mean((2, 3))).numpy()
    np.testing.assert_allclose(expected, reference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["relu6", "gelu", "silu", "hard_swish", "sigmoid", "relu"])
def test_activation_forms_are_pytorchs(kind):
    x = torch.linspace(-10, 10, 2 * 8 * 5).reshape(2, 8, 5, 1)
    as_module, as_call = both_forms(KINDS[kind](), x)
    torch.testing.assert_close(as_call, ACTIVATIONS[kind](x), rtol=0, atol=0)
    torch.testing.assert_close(as_module, ACTIVATIONS[kind](x), rtol=0, atol=0)


def test_relu6_is_a_clip_in_onnx():
    relu6 = network("  relu6")
    assert "Clip" in node_types(relu6, 13)
    onnx_agrees(relu6, torch.linspace(-12, 12, 2 * 8 * 10 * 10).reshape(2, 8, 10, 10))


def test_hard_swish_is_x_times_relu6_of_x_plus_3_over_6_and_its_onnx_operator_from_opset_14():
    x = torch.tensor([-4.0, -3.0, -1.5, 0.0, 1.5, 3.0, 4.5])
    torch.testing.assert_close(F.hardswish(x), torch.tensor([0.0, 0.0, -0.375, 0.0, 1.125, 3.0, 4.5]))
    hard_swish = network("  hard_swish")
    assert "HardSwish" in node_types(hard_swish, 14) and "HardSigmoid" not in node_types(hard_swish, 14)
    assert "HardSwish" not in node_types(hard_swish, 13) and "HardSigmoid" in node_types(hard_swish, 13)
    onnx_agrees(hard_swish, torch.linspace(-8, 8, 2 * 8 * 10 * 10).reshape(2, 8, 10, 10))


def test_gelu_uses_the_onnx_operator_from_opset_20_and_the_erf_formula_before():
    gelu = network("  gelu")
    assert "Gelu" not in node_types(gelu, 17) and "Erf" in node_types(gelu, 17)
    assert "Gelu" in node_types(gelu, 20) and "Erf" not in node_types(gelu, 20)
    onnx_agrees(gelu, torch.linspace(-12, 12, 2 * 8 * 10 * 10).reshape(2, 8, 10, 10))


# -- groupnorm -----------------------------------------------------------------------------------------------------


class TimmGroupNorm(nn.GroupNorm):
    """timm's GroupNorm (`get_norm_layer('groupnorm')`): nn.GroupNorm with the channels first and 32 groups."""

    def __init__(self, num_channels: int, num_groups: int = 32, eps: float = 1e-5):
        super().__init__(num_groups, num_channels, eps=eps)


def test_groupnorm_is_timms_in_every_backend():
    net = network("  c = conv(64, k=3, norm=false)\n  gn = groupnorm(eps=1e-3)\n  relu", "3x12x12")
    gn = next(n for n in net.ir if n.path == "gn")
    assert (gn.op.groups, gn.op.eps, gn.shape) == (32, 1e-3, (64, 12, 12))
    assert shapes(net) == {
        "c.weight": (64, 3, 3, 3),
        "gn.weight": (64,),
        "gn.bias": (64,),
        "fc.weight": (10, 64),
        "fc.bias": (10,),
    }
    assert "self.gn = nn.GroupNorm(32, 64, eps=0.001)" in net.torch_source
    assert "GN, 32 groups" in net.to_dot(level="op") and '"op": "groupnorm"' in net.summary("json")
    assert net.macs == network("  c = conv(64, k=3, norm=false)\n  relu", "3x12x12").macs
    x = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(1)) * 3 + 2
    model, expected = onnx_agrees(net, x)
    with torch.no_grad():  # non-trivial affine parameters, then timm's layer on the same conv output
        model.gn.weight.uniform_(0.5, 1.5)
        model.gn.bias.uniform_(-1, 1)
        reference = TimmGroupNorm(64, eps=1e-3)
        reference.load_state_dict({"weight": model.gn.weight, "bias": model.gn.bias})
        out = model(x)
        torch.testing.assert_close(out, model.fc(F.relu(reference(model.c(x))).mean((2, 3))))
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    for opset in OPSETS:  # the decomposition below 21, GroupNormalization from 21, with trained-looking parameters
        proto = net.to_onnx(weights=state, opset=opset)
        session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(session.run(None, {"input": x.numpy()})[0], out.numpy(), rtol=1e-4, atol=1e-5)
    assert "GroupNormalization" not in node_types(net, 18) and "GroupNormalization" in node_types(net, 21)
    assert sorted(i.name for i in net.to_onnx(opset=13).graph.initializer) == sorted(state)  # only the state_dict


def test_groupnorm_gives_timms_resnet50_gn_exactly():
    """`policy norm_op = groupnorm`: every norm a GroupNorm, the projections' too, as timm's resnet50_gn."""
    net = resdsl.compile(with_policy("resnet50", "resnet50_gn", "norm_op = groupnorm"))
    model = assert_timm_exact("resnet50_gn", net)
    assert isinstance(model.layer1[0].downsample[1], nn.GroupNorm) and model.bn1.num_groups == 32


def test_groupnorm_groups_must_divide_the_channels():
    with pytest.raises(resdsl.ResdslError) as caught:
        network("  c = conv(48, k=3)\n  gn = groupnorm(groups=32)")
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "E0204" and "groups=32 must divide the 48 channels" in diagnostic.message
    assert "gn = groupnorm(groups=32)" in str(caught.value)  # located at the call, with a caret


# -- eca -----------------------------------------------------------------------------------------------------------


class TimmEca(nn.Module):
    """timm's EcaModule (default gate, no MLP): kernel from the channel count, a 1-D conv across channels."""

    def __init__(self, channels: int, gamma: float = 2, beta: float = 1):
        super().__init__()
        t = int(abs(math.log(channels, 2) + beta) / gamma)
        kernel_size = max(t if t % 2 else t + 1, 3)
        self.conv = nn.Conv1d(1, 1, kernel_size=kernel_size, padding=(kernel_size - 1) // 2, bias=False)

    def forward(self, x):
        y = x.mean((2, 3)).view(x.shape[0], 1, -1)
        y = self.conv(y)
        y = y.sigmoid().view(x.shape[0], -1, 1, 1)
        return x * y.expand_as(x)


def test_eca_is_timms_in_every_backend():
    net = network("  c = conv(256, k=3, norm=false)\n  se = eca", "3x6x6")
    assert shapes(net)["se.conv.weight"] == (1, 1, 5)  # log2(256) = 8: t = 4, so k = 5
    assert "self.se = EcaModule(256)" in net.torch_source and "class EcaModule(nn.Module):" in net.torch_source
    assert "ECA" in net.to_dot(level="op") and '"op": "eca"' in net.summary("json")
    assert net.macs - network("  c = conv(256, k=3, norm=false)", "3x6x6").macs == 256 * 5
    x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    model, expected = onnx_agrees(net, x)
    reference = TimmEca(256)
    reference.load_state_dict({"conv.weight": model.se.conv.weight})
    with torch.no_grad():
        torch.testing.assert_close(model.se(model.c(x)), reference(model.c(x)))


def test_eca_widths_are_timms_ecaresnet50d():
    """`se = eca` after a bottleneck's last conv: timm's keys and kernel sizes (5, 5, 5, 7 over the four stages)."""
    net = resdsl.compile(
        (SPECS / "resnet50.res").read_text().replace("bottleneck(", "eca_bottleneck(")
        + "block eca_bottleneck(planes, stride=1) expansion 4 {\n  conv1 = conv(planes, k=1)\n"
        "  conv2 = conv(planes, k=3, s=stride)\n  conv3 = conv(planes * expansion, k=1)\n  se = eca\n  add input\n}\n"
    )
    ours = {k: v for k, v in shapes(net).items() if ".se." in k}
    assert ours == {k: v for k, v in timm_keys("ecaresnet50d").items() if ".se." in k}


def test_eca_gives_timms_ecaresnet50d_exactly():
    """`policy attn = eca` on resnet50d: timm's ecaresnet50d, logits included."""
    model = assert_timm_exact("ecaresnet50d", resdsl.compile(with_policy("resnet50d", "ecaresnet50d", "attn = eca")))
    assert [m.conv.kernel_size for m in (model.layer1[0].se, model.layer4[0].se)] == [(5,), (7,)]


def test_eca_kernel_can_be_given_and_must_be_odd():
    net = network("  se = eca(k=7, gamma=3, beta=0.5)", "64x4x4")
    assert shapes(net)["se.conv.weight"] == (1, 1, 7)
    assert "self.se = EcaModule(in_chans, kernel_size=7, gamma=3.0, beta=0.5)" in net.torch_source
    onnx_agrees(net, torch.randn(2, 64, 4, 4), opsets=(13,))
    assert shapes(network("  se = eca(k=auto, gamma=1)", "64x4x4"))["se.conv.weight"] == (1, 1, 7)  # t = 6
    for bad in ("eca(k=4)", "eca(gamma=0)"):
        with pytest.raises(resdsl.ResdslError) as caught:
            network(f"  se = {bad}", "64x4x4")
        assert [d.code for d in caught.value.diagnostics] == ["E0108"]


# -- se --------------------------------------------------------------------------------------------------------------


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """timm's channel rounding (timm/layers/helpers.py)."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


class TimmSE(nn.Module):
    """timm's SEModule with its defaults (ReLU, no norm, sigmoid gate, no max-pool)."""

    def __init__(self, channels: int, rd_ratio: float = 1.0 / 16, rd_divisor: int = 8):
        super().__init__()
        rd_channels = make_divisible(channels * rd_ratio, rd_divisor, round_limit=0.0)
        self.fc1 = nn.Conv2d(channels, rd_channels, kernel_size=1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(rd_channels, channels, kernel_size=1, bias=True)

    def forward(self, x):
        x_se = self.act(self.fc1(x.mean((2, 3), keepdim=True)))
        return x * self.fc2(x_se).sigmoid()


def se_network(se_call: str) -> resdsl.Compiled:
    """resnet50's layout with `se = <se_call>` after each bottleneck's last conv, as timm places SE."""
    return resdsl.compile(
        (SPECS / "resnet50.res").read_text().replace("bottleneck(", "se_block(")
        + "block se_block(planes, stride=1, ratio=0.25) expansion 4 {\n  conv1 = conv(planes, k=1)\n"
        f"  conv2 = conv(planes, k=3, s=stride)\n  conv3 = conv(planes * expansion, k=1)\n  se = {se_call}\n"
        "  add input\n}\n"
    )


@pytest.mark.parametrize(
    ("call", "model"),
    [
        ("se", "seresnet50"),
        ("se(reduction=16)", "seresnet50"),
        ("se(16, 8)", "seresnet50"),
        ("se(rd_ratio=0.0625, rd_divisor=8)", "seresnet50"),
        ("se(rd_ratio=0.25)", "resnetrs50"),
        ("se(rd_ratio=ratio)", "resnetrs50"),  # symbolic, in the block class
    ],
)
def test_se_widths_are_timms(call, model):
    net = se_network(call)
    ours = {k: v for k, v in shapes(net).items() if ".se." in k}
    assert ours == {k: v for k, v in timm_keys(model).items() if ".se." in k}
    with torch.device("meta"):  # the generated class computes the same widths
        state = net.to_torch().state_dict()
    assert {k: tuple(v.shape) for k, v in state.items() if ".se." in k} == ours


def test_se_is_timms_in_every_backend():
    net = network("  c = conv(200, k=3, norm=false)\n  se = se(rd_ratio=0.3, rd_divisor=16)", "3x6x6")
    squeezed = make_divisible(200 * 0.3, 16, round_limit=0.0)  # 60 rounds to 64
    assert shapes(net)["se.fc1.weight"] == (squeezed, 200, 1, 1) == (64, 200, 1, 1)
    assert "self.se = SqueezeExcite(200, rd_ratio=0.3, rd_divisor=16)" in net.torch_source
    assert "squeeze-excite, ratio 0.3" in net.to_dot(level="op") and '"op": "se"' in net.summary("json")
    assert "squeeze-excite, reduction 4" in se_network("se(rd_ratio=0.25)").to_dot(level="op")
    x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    model, _ = onnx_agrees(net, x)
    reference = TimmSE(200, rd_ratio=0.3, rd_divisor=16)
    reference.load_state_dict(model.se.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model.se(model.c(x)), reference(model.c(x)))


def test_se_widths_follow_make_divisible():
    for channels in (8, 24, 64, 96, 200, 256, 1000, 2048):
        for ratio, divisor in ((1 / 16, 8), (0.25, 8), (0.3, 16), (1 / 3, 4), (1.0, 8)):
            net = network(f"  se = se(rd_ratio={ratio!r}, rd_divisor={divisor})", f"{channels}x2x2")
            assert shapes(net)["se.fc1.weight"][0] == make_divisible(channels * ratio, divisor, round_limit=0.0)


def test_se_to_a_given_width_with_silu_in_every_backend():
    """timm's SEModule(C, rd_channels=n, act_layer=SiLU), as RegNetZ builds it: the width is n whatever C is."""
    net = network("  c = conv(48, k=3, norm=false)\n  se = se(rd_channels=12, act=silu)", "3x6x6")
    assert shapes(net)["se.fc1.weight"] == (12, 48, 1, 1) and shapes(net)["se.fc2.bias"] == (48,)
    assert "self.se = SqueezeExcite(48, rd_channels=12, act_layer=nn.SiLU)" in net.torch_source
    assert "squeeze-excite to 12, silu" in net.to_dot(level="op")
    layers = {layer["name"]: layer for layer in json.loads(net.summary("json"))["layers"]}
    assert layers["se"]["macs"] == 2 * 48 * 12  # fc1 and fc2 on the pooled 1×1 map
    assert layers["se"]["params"] == 12 * 48 + 12 + 48 * 12 + 48
    x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    model, _ = onnx_agrees(net, x)
    reference = TimmSE(48)
    reference.fc1, reference.fc2, reference.act = nn.Conv2d(48, 12, 1), nn.Conv2d(12, 48, 1), nn.SiLU()
    reference.load_state_dict(model.se.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model.se(model.c(x)), reference(model.c(x)))


def test_se_width_can_follow_a_block_parameter():
    """RegNetY's rule, a quarter of the block's input width, written with the block's `inp` parameter."""
    net = resdsl.compile(
        "network n {\n  input 3x8x8\n  b1 = sq(3, 32)\n  b2 = sq(32, 32)\n}\n"
        "block sq(inp, w) {\n  conv1 = conv(w, k=1)\n  se = se(rd_channels=inp // 4 + 1)\n}\n"
    )
    assert shapes(net)["b1.se.fc1.weight"] == (1, 32, 1, 1) and shapes(net)["b2.se.fc1.weight"] == (9, 32, 1, 1)
    assert "self.se = SqueezeExcite(w, rd_channels=inp // 4 + 1)" in net.torch_source
    with torch.device("meta"):
        state = net.to_torch().state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == shapes(net)


@pytest.mark.parametrize(
    ("call", "code"),
    [
        ("se(4, rd_ratio=0.25)", "E0102"),
        ("se(rd_ratio=0)", "E0108"),
        ("se(rd_channels=8, rd_ratio=0.25)", "E0102"),
        ("se(16, rd_channels=8)", "E0102"),
        ("se(rd_channels=8, divisor=4)", "E0102"),
        ("se(rd_channels=0)", "E0108"),
        ("se(rd_channels=2.5)", "E0107"),
        ("se(act=gelu)", "E0107"),
        ("se(act=1)", "E0107"),
    ],
)
def test_se_width_mistakes(call, code):
    with pytest.raises(resdsl.ResdslError) as caught:
        network(f"  se = {call}", "64x4x4")
    assert [d.code for d in caught.value.diagnostics] == [code]


# -- blurpool ------------------------------------------------------------------------------------------------------


class TimmBlurPool2d(nn.Module):
    """timm's BlurPool2d (reflect padding, binomial filter in a non-persistent buffer, depthwise strided conv)."""

    def __init__(self, channels: int, filt_size: int = 3, stride: int = 2):
        super().__init__()
        self.channels, self.stride = channels, stride
        self.padding = [((stride - 1) + (filt_size - 1)) // 2] * 4
        coeffs = torch.tensor([math.comb(filt_size - 1, k) for k in range(filt_size)], dtype=torch.float32)
        coeffs = coeffs / (2 ** (filt_size - 1))
        blur = (coeffs[:, None] * coeffs[None, :])[None, None, :, :].repeat(channels, 1, 1, 1)
        self.register_buffer("filt", blur, persistent=False)

    def forward(self, x):
        x = F.pad(x, self.padding, mode="reflect")
        return F.conv2d(x, self.filt, stride=self.stride, groups=self.channels)


@pytest.mark.parametrize(
    ("call", "filt", "stride", "side"),
    [
        ("blurpool", 3, 2, 6),
        ("blurpool(filt=5, s=2)", 5, 2, 6),
        ("blurpool(filt_size=4)", 4, 2, 6),
        ("blurpool(stride=3)", 3, 3, 5),
    ],
)
def test_blurpool_is_timms_in_every_backend(call, filt, stride, side):
    net = network(f"  c = conv(16, k=3, norm=false)\n  {call}", "3x11x11")
    (node,) = [n for n in net.ir if n.op.kind == "blurpool"]
    assert (
        node.shape == (16, side, side)
        and node.path == "blurpool"
        and shapes(net) == shapes(network("  c = conv(16, k=3, norm=false)", "3x11x11"))
    )
    assert f"{filt}×{filt} blur-pool" in net.to_dot(level="op") and '"op": "blurpool"' in net.summary("json")
    assert net.macs - network("  c = conv(16, k=3, norm=false)", "3x11x11").macs == 16 * side * side * filt * filt
    x = torch.randn(2, 3, 11, 11, generator=torch.Generator().manual_seed(1))
    model, _ = onnx_agrees(net, x)
    reference = TimmBlurPool2d(16, filt, stride)
    assert reference.state_dict() == {}  # the filter is no state, in timm as here
    with torch.no_grad():
        features = model.c(x)
        expected = reference(features)
        as_module, as_call = both_forms(node.op, features)
    torch.testing.assert_close(as_call, expected, rtol=0, atol=0)
    torch.testing.assert_close(as_module, expected, rtol=0, atol=0)
    proto = net.to_onnx()
    assert [n.op_type for n in proto.graph.node if n.name.startswith("blurpool")] == [
        "Constant",
        "Pad",
        "Constant",
        "Conv",
    ]
    assert {i.name for i in proto.graph.initializer} == set(shapes(net))  # the filter is a constant, not a weight


def test_blurpool_gives_timms_resnetblur50_exactly():
    """`policy aa = blurpool` and a blurred stem: timm's resnetblur50, logits included (the blur holds no state)."""
    spec = with_policy("resnet50", "resnetblur50", "aa = blurpool")
    net = resdsl.compile(spec.replace("maxpool(k=3, s=2)", "maxpool = seq {\n    maxpool(k=3, s=1)\n    blurpool\n  }"))
    source = net.torch_source
    assert "self.maxpool = nn.Sequential(nn.MaxPool2d(3, 1, padding=1), BlurPool2d(64))" in source
    assert "self.aa = BlurPool2d(width, stride=stride) if stride > 1 else nn.Identity()" in source
    model = assert_timm_exact("resnetblur50", net)
    assert isinstance(model.layer1[0].aa, nn.Identity) and type(model.layer2[0].aa).__name__ == "BlurPool2d"


def test_blurpool_is_the_identity_at_stride_1():
    """As timm's ResNet: anti-aliasing only where a layer strides, nn.Identity elsewhere."""
    net = network("  c = conv(16, k=3, norm=false)\n  aa = blurpool(s=1, filt=5)", "3x2x2")  # no padding check
    (node,) = [n for n in net.ir if n.op.kind == "blurpool"]
    assert node.shape == (16, 2, 2) and node.op.downsampling() == 1 and node.op.macs([(16, 2, 2)], (16, 2, 2)) == 0
    assert "self.aa = nn.Identity()" in net.torch_source and "identity" in net.to_dot(level="op")
    x = torch.randn(2, 3, 2, 2)
    model, _ = onnx_agrees(net, x)
    assert [n.op_type for n in net.to_onnx().graph.node if n.name == "aa"] == ["Identity"]
    assert torch.equal(both_forms(node.op, x)[1], x)


def test_blurpool_needs_an_input_larger_than_its_reflect_padding():
    with pytest.raises(resdsl.ResdslError) as caught:
        network("  blurpool(filt=5)", "8x2x2")  # pads 2 by reflection: needs at least 3×3
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "E0201" and "needs an input larger than 2×2" in diagnostic.message


# -- drop_path -----------------------------------------------------------------------------------------------------


def timm_drop_path(x, drop_prob: float = 0.0, training: bool = False, scale_by_keep: bool = True):
    """timm's drop_path (timm/layers/drop.py)."""
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    random_tensor = x.new_empty(shape).bernoulli_(keep_prob)
    if keep_prob > 0.0 and scale_by_keep:
        random_tensor.div_(keep_prob)
    return x * random_tensor


def test_drop_path_is_timms_in_train_mode_and_the_identity_in_eval():
    net = network("  c = conv(8, k=3, norm=false)\n  drop_path(0.4)", "3x6x6")
    (node,) = [n for n in net.ir if n.op.kind == "drop_path"]
    assert node.path == "drop_path" and node.shape == (8, 6, 6) and node.op.p == 0.4
    assert "self.drop_path = DropPath(0.4)" in net.torch_source and "def _drop_path(" in net.torch_source
    assert "drop path 0.4" in net.to_dot(level="op") and '"op": "drop_path"' in net.summary("json")
    assert net.macs == network("  c = conv(8, k=3, norm=false)", "3x6x6").macs
    x = torch.randn(16, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    model, expected = onnx_agrees(net, x)  # eval: the identity, in PyTorch and in ONNX
    assert [n.op_type for n in net.to_onnx().graph.node if n.name.startswith("drop_path")] == ["Identity"]
    with torch.no_grad():
        features = model.c(x)
        np.testing.assert_allclose(expected, model.fc(features.mean((2, 3))).numpy(), rtol=1e-5, atol=1e-6)
        model.train()
        torch.manual_seed(7)
        trained = model(x)
        torch.manual_seed(7)
        reference = model.fc(timm_drop_path(features, 0.4, training=True).mean((2, 3)))
    torch.testing.assert_close(trained, reference, rtol=0, atol=0)
    # Whole samples: each kept one scaled by 1 / 0.6, each dropped one reduced to the classifier's bias.
    pooled = (trained - model.fc.bias) @ torch.linalg.pinv(model.fc.weight).T
    dropped = pooled.abs().amax(1) < 1e-5
    assert 0 < dropped.sum() < 16
    torch.testing.assert_close(pooled[~dropped], features.mean((2, 3))[~dropped] / 0.6, rtol=1e-4, atol=1e-5)


def test_drop_path_forms_agree_in_training():
    op = KINDS["drop_path"](p=0.25)
    x = torch.randn(32, 4, 3, 3)
    as_module, as_call = both_forms(op, x, training=True, seed=3)
    torch.testing.assert_close(as_module, as_call, rtol=0, atol=0)
    torch.manual_seed(3)
    torch.testing.assert_close(as_call, timm_drop_path(x, 0.25, training=True), rtol=0, atol=0)
    assert torch.equal(both_forms(op, x, training=False)[0], x)


def test_drop_path_on_a_residual_branch_in_a_block():
    net = resdsl.compile(
        "block res(c, dpr=0.1) {\n  conv1 = conv(c, k=3)\n  conv2 = conv(c, k=3)\n  drop_path(dpr)\n  add input\n}\n"
        "network n {\n  input 8x6x6\n  layer1 = res(8) x 2 first(dpr=0.0)\n  gap; flatten; fc = linear(4)\n}\n"
    )
    assert [n.op.p for n in net.ir.walk() if n.op.kind == "drop_path"] == [0.0, 0.1]
    assert "self.drop_path = DropPath(dpr)" in net.torch_source
    onnx_agrees(net, torch.randn(2, 8, 6, 6), opsets=(13, 21))


@pytest.mark.parametrize(("call", "code"), [("drop_path(1.0)", "E0108"), ("drop_path", "E0103")])
def test_drop_path_probability_mistakes(call, code):
    with pytest.raises(resdsl.ResdslError) as caught:
        network(f"  {call}", "8x4x4")
    assert [d.code for d in caught.value.diagnostics] == [code]


# -- all of them together ------------------------------------------------------------------------------------------

EVERY_NEW_OP = """
block unit(c, stride=1, dpr=0.1) {
  conv1 = conv(c, k=3, norm=false)
  gn1 = groupnorm(groups=8)
  silu
  blurpool(s=stride)
  conv2 = conv(c, k=3, norm=false)
  gn2 = groupnorm(groups=8, eps=1e-3)
  se = eca
  att = se(rd_ratio=0.25)
  drop_path(dpr)
  add input
  gelu
}

network every_new_op {
  input 3x16x16
  classes 10
  policy norm = none
  conv1 = conv(32, k=3)
  relu6
  layer1 = unit(32) x 2
  layer2 = unit(64) x 2 first(stride=2)
  gap; flatten; fc = linear(classes)
}
"""


def test_every_new_op_in_block_classes_scripts_and_exports():
    """The ops in one network, written in a block class's terms: state layout, TorchScript and ONNX all agree."""
    net = resdsl.compile(EVERY_NEW_OP)
    with torch.device("meta"):
        state = net.to_torch().state_dict()
    assert list(state) == list(shapes(net)) and {k: tuple(v.shape) for k, v in state.items()} == shapes(net)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    model, expected = onnx_agrees(net, x)
    assert sum(p.numel() for p in model.parameters()) == net.params
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.script(model)(x).numpy(), expected, rtol=0, atol=0)


def test_the_language_reference_example_has_timms_keys():
    """docs/language.md's hand-written bottleneck compiles, and its keys are named as timm names them."""
    docs = (Path(__file__).resolve().parent.parent / "docs" / "language.md").read_text()
    block = docs.split("```\nblock gn_eca_bottleneck", 1)[1].split("```", 1)[0]
    net = resdsl.compile(
        "block gn_eca_bottleneck" + block + "network n {\n  input 3x32x32\n  policy norm = none\n"
        "  layer1 = gn_eca_bottleneck(64, dpr=0.1) x 2\n  gap; flatten; fc = linear(10)\n}\n"
    )
    keys = list(shapes(net))
    assert keys[:4] == ["layer1.0.conv1.weight", "layer1.0.bn1.weight", "layer1.0.bn1.bias", "layer1.0.conv2.weight"]
    assert "layer1.1.se.conv.weight" in keys and not any("running" in k for k in keys)


@pytest.mark.parametrize("passthrough", ["drop_path(0.0)", "dropout(p=0.0)"])
def test_an_add_never_overwrites_what_a_passthrough_op_hands_on(passthrough):
    """At p = 0 (and in eval) these return their input itself: the ReLU's output, which its backward needs."""
    net = resdsl.compile(
        f"block b(c) {{\n  conv1 = conv(c, k=3)\n  act = relu\n  {passthrough}\n  add input\n}}\n"
        "network n {\n  input 8x6x6\n  policy norm = none\n  layer1 = b(8)\n  gap; flatten; fc = linear(2)\n}\n"
    )
    model = net.to_torch().train()
    model(torch.randn(2, 8, 6, 6)).sum().backward()  # no in-place modification of a tensor autograd needs
    assert model.layer1.conv1.weight.grad is not None
