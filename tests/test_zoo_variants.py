"""The ResNet family of the papers: exact counts, forward passes and what each variant is."""

from __future__ import annotations

import importlib.util
import operator
import re

import pytest
import torch
import torch.fx
from conftest import REFERENCE, ROOT, SPEC_SAMPLE, SPECS
from recipe import fill_module
from timm_convnext import ARCH as CONVNEXT
from timm_mobilenetv2 import MULTIPLIERS as MOBILENETV2
from timm_regnet import CFGS as REGNET
from timm_resnet import ZOO
from timm_resnetv2 import ZOO as RESNETV2
from torch.nn import functional as F

import resdsl
from resdsl.cli import main


def compile_spec(name: str, **overrides) -> resdsl.Compiled:
    return resdsl.compile(SPECS / f"{name}.res", {k: str(v) for k, v in overrides.items()})


def torch_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


PARAMS = {
    "resnet50_v1": 25_557_032,
    "resnet101_v1": 44_549_160,
    "resnet152_v1": 60_192_808,
    "cifar_resnet20": 269_722,
    "cifar_resnet32": 464_154,
    "cifar_resnet44": 658_586,
    "cifar_resnet56": 853_018,
    "cifar_resnet110": 1_727_962,
    "cifar_resnet1202": 19_421_274,
    "preact_resnet164": 1_703_258,
    "preact_resnet1001": 10_327_706,
    "resnet50d": 25_576_264,
    "seresnet50": 28_088_024,
}


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parameter_counts(name):
    assert compile_spec(name).params == PARAMS[name]


# He et al. 2015, Table 1: 1.8, 3.6, 3.8, 7.6, 11.3 ×10⁹ "FLOPs" (multiply-adds).
TABLE1_GMACS = {
    "resnet18": 1.814,
    "resnet34": 3.664,
    "resnet50_v1": 3.858,
    "resnet101_v1": 7.570,
    "resnet152_v1": 11.282,
}


@pytest.mark.parametrize("name", sorted(TABLE1_GMACS))
def test_table1_macs(name):
    assert round(compile_spec(name).macs / 1e9, 3) == TABLE1_GMACS[name]


@pytest.mark.parametrize("depth", [50, 101, 152])
def test_v1_has_torchvisions_weights(depth):
    """v1 moves the stride, not a weight: its state_dict is torchvision's, key for key."""
    model = compile_spec(f"resnet{depth}_v1").to_torch()
    ours = [(key, "x".join(map(str, t.shape)) or "scalar") for key, t in model.state_dict().items()]
    lines = (REFERENCE / f"resnet{depth}.keys.tsv").read_text().splitlines()[1:]
    assert ours == [tuple(line.split("\t")[:2]) for line in lines]


def test_v1_strides_the_first_1x1_conv():
    ir = compile_spec("resnet50_v1").ir
    convs = {n.path: n.op for n in ir if n.op.kind == "conv"}
    assert (convs["layer2.0.conv1"].stride, convs["layer2.0.conv2"].stride) == (2, 1)
    assert (convs["layer2.0.conv1"].kernel, convs["layer2.0.conv2"].kernel) == (1, 3)


def test_summary_says_macs_and_offers_flops(capsys):
    macs = compile_spec("resnet50_v1").macs
    assert main(["summary", str(SPECS / "resnet50_v1.res")]) == 0
    table = capsys.readouterr().out
    assert f"MACs        {macs:,} (3.858 G) multiply-accumulates" in table
    assert "FLOPs = 2 × MACs: --flops" in table
    assert main(["summary", str(SPECS / "resnet50_v1.res"), "--flops"]) == 0
    flops = capsys.readouterr().out
    assert f"FLOPs       {2 * macs:,} (7.716 G) floating-point operations (2 × MACs)" in flops


def test_cifar_depth_is_a_let_the_repeat_counts_read():
    assert compile_spec("cifar_resnet20", n=18).params == PARAMS["cifar_resnet110"]


# -- forward passes of the deepest nets ---------------------------------------


@pytest.mark.parametrize("name", ["cifar_resnet1202", "preact_resnet1001"])
def test_deep_cifar_nets_run(name):
    net = compile_spec(name)
    model = net.to_torch().train()  # at initialisation only batch statistics keep a thousand layers in range
    assert torch_params(model) == PARAMS[name]
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_seresnet50_runs_with_timm_se_widths():
    model = compile_spec("seresnet50").to_torch().eval()
    assert torch_params(model) == PARAMS["seresnet50"]
    state = model.state_dict()
    # timm's SEModule: rd = make_divisible(C / 16, 8); 1×1 convs with bias.
    assert tuple(state["layer1.0.se.fc1.weight"].shape) == (16, 256, 1, 1)
    assert tuple(state["layer4.2.se.fc2.weight"].shape) == (2048, 128, 1, 1)
    assert tuple(state["layer4.2.se.fc2.bias"].shape) == (2048,)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0)))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()


def test_se_gates_the_branch_after_its_last_bn():
    net = compile_spec("seresnet50", input="3x64x64")
    model = net.to_torch().eval()
    fill_module(model)
    block = model.layer1[1]
    x = torch.rand(1, 256, 16, 16)
    with torch.no_grad():
        branch = block.bn3(block.conv3(torch.relu(block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(x))))))))
        squeeze = torch.relu(block.se.fc1(branch.mean((2, 3), keepdim=True)))
        expected = torch.relu(branch * torch.sigmoid(block.se.fc2(squeeze)) + x)
        torch.testing.assert_close(block(x), expected)
    kinds = [n.op.kind for n in net.ir.walk() if _block(n) == "layer1.1"]
    assert kinds[-4:] == ["batchnorm", "se", "add", "relu"]


# -- option A ------------------------------------------------------------------


def test_option_a_shortcut_is_parameter_free_strided_and_zero_padded():
    net = compile_spec("cifar_resnet20")
    pads = [n for n in net.ir if n.op.kind == "pad_shortcut"]
    assert [_block(n) for n in pads] == ["layer2.0", "layer3.0"]
    model = net.to_torch().eval()
    assert not any("downsample" in key for key in model.state_dict())
    block = model.layer2[0]
    # Every parameter of the block is on its residual branch.
    assert torch_params(block) == 16 * 32 * 9 + 2 * 32 + 32 * 32 * 9 + 2 * 32
    # Silence the branch (γ = β = 0 on its last BN): the block's output is its shortcut.
    with torch.no_grad():
        block.bn2.weight.zero_()
        block.bn2.bias.zero_()
        x = torch.rand(2, 16, 32, 32)  # non-negative, as after a ReLU
        out = block(x)
    assert out.shape == (2, 32, 16, 16)
    torch.testing.assert_close(out[:, 8:24], x[:, :, ::2, ::2], rtol=0, atol=0)
    assert torch.count_nonzero(out[:, :8]) == 0 and torch.count_nonzero(out[:, 24:]) == 0


# -- pre-activation ------------------------------------------------------------


def test_preact_projections_have_no_bn_and_a_final_bn_relu():
    net = compile_spec("preact_resnet164")
    keys = net.to_torch().state_dict()
    assert sorted(k for k in keys if "downsample" in k) == [
        "layer1.0.downsample.0.weight",
        "layer2.0.downsample.0.weight",
        "layer3.0.downsample.0.weight",
    ]
    tail = [n.op.kind for n in net.ir.walk()][-6:]
    assert tail == ["add", "batchnorm", "relu", "gap", "flatten", "linear"]


# -- the five activation orders (He et al. 2016, Figure 4) --------------------

ORDERS = {
    "original": ["conv", "batchnorm", "relu", "conv", "batchnorm", "add", "relu"],
    "bn_after_add": ["conv", "batchnorm", "relu", "conv", "add", "batchnorm", "relu"],
    "relu_before_add": ["conv", "batchnorm", "relu", "conv", "batchnorm", "relu", "add"],
    "relu_preact": ["relu", "conv", "batchnorm", "relu", "conv", "batchnorm", "add"],
    "full_preact": ["batchnorm", "relu", "conv", "batchnorm", "relu", "conv", "add"],
}
_TORCH_KIND = {torch.nn.Conv2d: "conv", torch.nn.BatchNorm2d: "batchnorm", torch.nn.ReLU: "relu"}
_FUNCTION_KIND = {operator.add: "add", operator.iadd: "add"}


def _traced_kinds(module: torch.nn.Module) -> list[str]:
    traced = torch.fx.symbolic_trace(module)
    kinds = []
    for node in traced.graph.nodes:
        if node.op == "call_module":
            kinds.append(_TORCH_KIND[type(traced.get_submodule(node.target))])
        elif node.op == "call_function":
            kinds.append(_FUNCTION_KIND[node.target])
    return kinds


@pytest.mark.parametrize("norm", sorted(ORDERS))
def test_activation_order_of_a_block(norm):
    net = compile_spec("resnet18", norm=norm)
    kinds = [n.op.kind for n in net.ir.walk() if _block(n) == "layer1.0"]
    assert kinds == ORDERS[norm]
    # The generated forward runs the ops in the IR's order.
    assert _traced_kinds(net.to_torch().layer1[0]) == ORDERS[norm]


def test_aliases_name_the_same_order():
    assert compile_spec("resnet18", norm="post").ir_text == compile_spec("resnet18", norm="original").ir_text
    assert compile_spec("resnet18", norm="pre").ir_text == compile_spec("resnet18", norm="full_preact").ir_text


def test_five_orders_are_five_networks():
    assert len({tuple(kinds) for kinds in ORDERS.values()}) == 5
    x = torch.rand(2, 3, 64, 64)
    outputs = []
    for norm in ORDERS:
        model = compile_spec("resnet18", norm=norm, input="3x64x64").to_torch().eval()
        fill_module(model)
        with torch.no_grad():
            outputs.append(model(x))
    for i in range(5):
        for j in range(i + 1, 5):
            assert not torch.allclose(outputs[i], outputs[j], atol=1e-3)


@pytest.mark.parametrize("name", [p.stem for p in SPEC_SAMPLE])
def test_relu_preact_works_on_every_spec(name):
    net = compile_spec(name, norm="relu_preact")
    assert net.ir.policies.norm == "relu_preact"
    managed = [n for n in net.ir if "conv" in n.op.families and n.norm]
    assert net.torch_source.count("nn.ReLU(") > 0 or not managed  # regnetz_005 writes every norm (norm=false)


# -- plain networks ------------------------------------------------------------


def test_plain34_has_no_shortcuts():
    net = compile_spec("resnet34", shortcut="none")
    assert net.params == 21_623_848
    kinds = {n.op.kind for n in net.ir}
    assert "add" not in kinds
    model = net.to_torch().eval()
    assert torch_params(model) == 21_623_848
    assert not any("downsample" in key for key in model.state_dict())
    assert "+" not in net.torch_source.split("def forward", 1)[1]
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 64)).shape == (1, 1000)


# -- ResNet-C/D ----------------------------------------------------------------


def test_resnet50d_deep_stem_and_avgpool_projection():
    net = compile_spec("resnet50d", input="3x64x64")
    model = net.to_torch().eval()
    assert torch_params(model) == PARAMS["resnet50d"]
    state = model.state_dict()
    assert [tuple(state[f"conv1.{i}.weight"].shape) for i in (0, 3, 6)] == [  # timm's deep stem
        (32, 3, 3, 3),
        (32, 32, 3, 3),
        (64, 32, 3, 3),
    ]
    # timm's names: the pool (or its Identity at stride 1) is downsample.0.
    assert tuple(state["layer1.0.downsample.1.weight"].shape) == (256, 64, 1, 1)
    assert tuple(state["layer2.0.downsample.1.weight"].shape) == (512, 256, 1, 1)
    chain = [n.op for n in net.ir.walk() if n.shortcut_of is not None and _block(n) == "layer2.0"]
    assert [op.kind for op in chain] == ["avgpool", "conv", "batchnorm"]
    assert (chain[0].kernel, chain[0].stride, chain[0].ceil_mode, chain[0].count_include_pad) == (2, 2, True, False)
    assert chain[1].stride == 1
    fill_module(model)
    down = model.layer2[0].downsample
    x = torch.rand(1, 256, 7, 7)  # odd: ceil_mode keeps the last row and column
    with torch.no_grad():
        expected = down[2](F.conv2d(F.avg_pool2d(x, 2, 2, ceil_mode=True, count_include_pad=False), down[1].weight))
        torch.testing.assert_close(down(x), expected)
        assert model(torch.rand(1, 3, 64, 64)).shape == (1, 1000)


def test_projection_policy_applies_to_any_spec():
    assert compile_spec("resnet50", projection="avgpool").params == 25_557_032
    assert compile_spec("resnet50", projection="avgpool").macs < compile_spec("resnet50").macs + 1


# -- other knobs ---------------------------------------------------------------


def test_in_channels_adapts_the_stem():
    net = compile_spec("resnet18", in_channels=1)
    assert net.params == 11_689_512 - 64 * 2 * 7 * 7
    model = net.to_torch().eval()
    assert tuple(model.conv1.weight.shape) == (64, 1, 7, 7)
    with torch.no_grad():
        assert model(torch.rand(1, 1, 64, 64)).shape == (1, 1000)


def _conv(ir, path):
    return next(n.op for n in ir if n.path == path)


def _block(node) -> str | None:
    return node.block.path if node.block is not None else None


@pytest.mark.parametrize(
    "output_stride, dilations",
    [
        # torchvision's replace_stride_with_dilation [False, True, True] and [False, False, True]
        (8, {"layer3.0": (1, 1), "layer3.1": (1, 2), "layer4.0": (1, 2), "layer4.2": (1, 4)}),
        (16, {"layer3.0": (2, 1), "layer3.5": (1, 1), "layer4.0": (1, 1), "layer4.1": (1, 2)}),
    ],
)
def test_output_stride_by_dilation(output_stride, dilations):
    net = compile_spec("resnet50", output_stride=output_stride)
    assert net.params == 25_557_032
    ir = net.ir
    for block, (stride, dilation) in dilations.items():
        conv = _conv(ir, f"{block}.conv2")
        assert (conv.stride, conv.dilation, conv.padding) == (stride, dilation, dilation)
    assert _conv(ir, "layer4.0.downsample.0").stride == 1
    size = 224 // output_stride
    last = next(n for n in ir if n.path == "layer4.2.bn3")
    assert last.shape == (2048, size, size)
    model = compile_spec("resnet50", output_stride=output_stride, input="3x64x64").to_torch().eval()
    shapes = []
    model.layer4.register_forward_hook(lambda module, args, out: shapes.append(tuple(out.shape)))
    with torch.no_grad():
        model(torch.rand(1, 3, 64, 64))
    assert shapes == [(1, 2048, 64 // output_stride, 64 // output_stride)]


def test_output_stride_errors():
    with pytest.raises(resdsl.ResdslError) as info:
        compile_spec("resnet18", output_stride=2)
    assert [d.code for d in info.value.diagnostics] == ["E0121"]
    spec = """
    block nodil(planes, stride=1) expansion 1 {
      conv(planes, k=3, s=stride)
      conv(planes, k=3)
      add input
    }
    network net {
      input 3x64x64
      policy output_stride = 8
      conv(16, k=3, s=2)
      nodil(16)
      nodil(32, stride=2)
      nodil(64, stride=2)
      nodil(64, stride=2)
    }
    """
    with pytest.raises(resdsl.ResdslError) as info:
        resdsl.compile(spec)
    assert [d.code for d in info.value.diagnostics] == ["E0121"]
    assert "no `dilation` parameter" in str(info.value)


def test_zero_init_last():
    model = compile_spec("resnet50", zero_init_last="true").to_torch()
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            zeroed = bool(re.fullmatch(r"layer\d\.\d+\.bn3", name))
            assert torch.count_nonzero(module.weight).item() == (0 if zeroed else module.num_features), name
    # Every residual branch starts at zero: each identity block is a ReLU of its input.
    model.eval()
    x = torch.rand(1, 256, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model.layer1[1](x), torch.relu(x))
    default = compile_spec("resnet50").to_torch()
    assert torch.count_nonzero(default.layer1[0].bn3.weight) == 256


# -- docs/model-zoo.md -----------------------------------------------------------


def test_model_zoo_doc_is_current_and_depths_are_the_papers():
    spec = importlib.util.spec_from_file_location("model_zoo", ROOT / "scripts" / "model_zoo.py")
    zoo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(zoo)
    table = zoo.table()
    assert (ROOT / "docs" / "model-zoo.md").read_text() == table, "run scripts/model_zoo.py"
    cells = [
        [cell.strip(" `") for cell in line.split("|")[1:-1]] for line in table.splitlines() if line.startswith("| `")
    ]
    assert {row[0] for row in cells} == {p.stem for p in SPECS.glob("*.res")}
    assert set(zoo.TIMM_RESNET) == set(ZOO)  # tests/timm_resnet.py lists the same 80 models
    assert set(zoo.TIMM_RESNETV2) == set(RESNETV2)  # tests/timm_resnetv2.py lists the same 20
    assert set(zoo.TIMM_MOBILENETV2) == set(MOBILENETV2)  # tests/timm_mobilenetv2.py lists the same 2
    assert set(zoo.TIMM_CONVNEXT) == set(CONVNEXT)  # and tests/timm_convnext.py the same 2 ConvNeXts
    assert set(zoo.TIMM_REGNET) == set(REGNET)  # tests/timm_regnet.py lists the same 4
    timm = set(ZOO) | set(RESNETV2) | set(MOBILENETV2) | set(CONVNEXT) | set(REGNET) | {"legacy_seresnet18"}
    timm |= set(zoo.TIMM_SPLIT)  # Res2Net, ResNeSt, SK-ResNets: tests/test_timm_res2net.py and its siblings
    assert {row[0] for row in cells if row[1]} == timm
    assert all(row[1] in ("", row[0]) for row in cells)
    named_by_depth = 0
    for name, _, _, depth, *_ in cells:
        match = re.fullmatch(r"(?:cifar_|preact_|cifar_preact_)?resnet(\d+)(?:_v1)?", name)
        if match:
            named_by_depth += 1
            assert depth == match.group(1), name
    assert named_by_depth == 19


def test_diagrams_name_the_new_ops():
    se = compile_spec("seresnet50").to_dot(level="op")
    assert "squeeze-excite, reduction 16" in se
    pooled = compile_spec("resnet50d").to_dot(level="op")
    assert "2×2 avg-pool, stride 2" in pooled
