"""The .res language: each construct, checked through the IR and the generated module."""

from __future__ import annotations

import networkx as nx
import pytest
import torch
from conftest import SPECS

import resdsl
from resdsl.diagnostics import Source
from resdsl.frontend.format import format_source
from resdsl.ir.node import Origin, ShortcutKind


def ops_of(net, block: str | None) -> list[str]:
    return [n.op.kind for n in net.ir.walk() if (n.block.path if n.block else None) == block]


def by_path(net) -> dict:
    return {n.path: n for n in net.ir if n.path}


def test_resnet50_spec_fits_in_40_lines():
    lines = (SPECS / "resnet50.res").read_text().splitlines()
    meaningful = [line for line in lines if line.strip() and not line.strip().startswith("#")]
    assert len(meaningful) <= 40


def test_ir_nodes_carry_path_span_origin_and_shape():
    net = resdsl.compile(SPECS / "resnet18.res")
    assert isinstance(net.ir.graph, nx.DiGraph)
    paths = by_path(net)
    conv = paths["layer2.0.conv1"]
    assert conv.shape == (128, 28, 28)
    assert conv.origin is Origin.SPEC
    assert conv.span.location == "std/blocks.res:9:3"
    projection = paths["layer2.0.downsample.0"]
    assert projection.origin is Origin.PROJECTION and projection.op.stride == 2
    assert projection.parent.path == "layer2.0.downsample" and projection.block.path == "layer2.0"
    bn = paths["layer2.0.bn1"]
    assert bn.origin is Origin.NORM
    add = next(n for n in net.ir if n.op.kind == "add" and n.block.path == "layer2.0")
    main, shortcut = net.ir.operands(add)
    assert net.ir.graph.edges[main, add] == {"pos": 0} and not net.ir.is_shortcut_edge(main, add)
    assert net.ir.graph.edges[shortcut, add] == {"pos": 1} and net.ir.is_shortcut_edge(shortcut, add)
    assert shortcut is paths["layer2.0.downsample.1"]
    assert (
        add.residual.kind is ShortcutKind.PROJECTION
        and add.residual.source is net.ir.operands(paths["layer2.0.conv1"])[0]
    )


SPEC_FEATURES = """
# a comment; the next line too
use "std/blocks.res"   # standard library

block twoadd(c, k=3) expansion 2 {
  let wide = c * expansion // 2 + (c - c)   # arithmetic with precedence
  a = conv(wide, k=k)
  mid = conv(c, k=3)
  conv3 = conv(c, k=1)
  add mid                  # any earlier named tensor
  add input                # the block input
}

network feat {
  input 3x32x32; classes 10
  let depth = 2
  policy norm = post
  stem = conv(16, k=3)
  s = twoadd(16) x depth first(k=1)
  tail = basic(32, stride=2)
  skip = conv(32, k=3, norm=false)
  add tail
  gap
  flatten
  dropout(p=0.2)
  fc = linear(classes)
}
"""


def test_features_compile_and_run():
    net = resdsl.compile(SPEC_FEATURES)
    paths = by_path(net)
    assert {"s.0.a", "s.1.a", "tail.conv1", "tail.downsample.0", "skip", "fc"} <= set(paths)
    assert (paths["s.0.a"].op.kernel, paths["s.1.a"].op.kernel) == (1, 3)  # first(k=1)
    # `skip` opted out of the norm policy: its output goes straight into the add.
    (user,) = net.ir.users(paths["skip"])
    assert user.op.kind == "add" and user.block is None
    model = net.to_torch().eval()
    with torch.no_grad():
        assert tuple(model(torch.zeros(2, 3, 32, 32)).shape) == (2, 10)
    assert sum(p.numel() for p in model.parameters()) == net.params


def test_set_overrides_a_network_let():
    net = resdsl.compile(SPEC_FEATURES, overrides={"depth": "3"})
    (stage,) = [m for m in net.ir.root.children if m.name == "s"]
    assert [block.path for block in stage.children] == ["s.0", "s.1", "s.2"]


def test_use_imports_blocks_relative_to_the_spec(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "mine.res").write_text("block mine(c) {\n  conv1 = conv(c, k=3)\n  add input\n}\n")
    spec = tmp_path / "net.res"
    spec.write_text('use "lib/mine.res"\nnetwork n {\n  input 8x8x8\n  b = mine(8) x 2\n}\n')
    net = resdsl.compile(spec)
    assert ops_of(net, "b.1") == ["conv", "batchnorm", "add", "relu"]


def test_use_cycle_and_missing_file_are_located_errors(tmp_path):
    (tmp_path / "a.res").write_text('use "b.res"\n')
    (tmp_path / "b.res").write_text('use "a.res"\n')
    spec = tmp_path / "net.res"
    spec.write_text('use "a.res"\nuse "nope.res"\nnetwork n {\n  input 8x8x8\n  relu\n}\n')
    with pytest.raises(resdsl.ResdslError) as info:
        resdsl.compile(spec)
    codes = sorted(d.code for d in info.value.diagnostics)
    assert codes == ["E0109", "E0110"]


def test_policies_change_the_network():
    base = resdsl.compile(SPECS / "resnet18.res")
    pre = resdsl.compile(SPECS / "resnet18.res", overrides={"norm": "pre"})
    none = resdsl.compile(SPECS / "resnet18.res", overrides={"norm": "none"})
    assert ops_of(base, "layer1.0") == ["conv", "batchnorm", "relu", "conv", "batchnorm", "add", "relu"]
    assert ops_of(pre, "layer1.0") == ["batchnorm", "relu", "conv", "batchnorm", "relu", "conv", "add"]
    assert ops_of(none, "layer1.0") == ["conv", "conv", "add"]
    a = resdsl.compile(SPECS / "resnet18.res", overrides={"shortcut": "A"})
    c = resdsl.compile(SPECS / "resnet18.res", overrides={"shortcut": "C"})

    def kinds(net):
        return [n.residual.kind.value for n in net.ir.walk() if n.op.kind == "add"]

    assert kinds(base) == ["identity", "identity"] + ["projection", "identity"] * 3
    assert kinds(a) == ["identity", "identity"] + ["pad", "identity"] * 3
    assert kinds(c) == ["projection"] * 8
    assert a.params == base.params - (8192 + 256 + 32768 + 512 + 131072 + 1024)


def test_generated_source_is_deterministic():
    first = resdsl.compile(SPECS / "resnet50.res").torch_source
    second = resdsl.compile(SPECS / "resnet50.res").torch_source
    assert first == second
    assert "class Bottleneck(nn.Module):" in first
    assert "Bottleneck(256, 128, stride=2, downsample=True)," in first


def test_norm_none_places_no_batchnorm_on_projections():
    net = resdsl.compile(SPECS / "resnet18.res", overrides={"norm": "none"})
    assert not [n for n in net.ir if n.op.kind == "batchnorm"]
    assert [n.path for n in net.ir.walk() if n.origin is Origin.PROJECTION] == [
        "layer2.0.downsample.0",
        "layer3.0.downsample.0",
        "layer4.0.downsample.0",
    ]


def test_policy_c_leaves_a_flat_shortcut_as_identity():
    net = resdsl.compile("network n {\n input 3x8x8\n policy shortcut = C\n gap\n a = flatten\n relu\n add a\n}\n")
    (add,) = [n for n in net.ir if n.op.kind == "add"]
    assert add.residual.kind is ShortcutKind.IDENTITY


DEEP_STEM = """use "std/blocks.res"
network deep {{
  input 3x32x32
  classes 10
  policy norm = pre
  conv1_1 = conv(16, k=3, s=2{first})
  conv1_2 = conv(16, k=3{second})
  conv1_3 = conv(32, k=3)
  layer1 = basic(32) x 1
  gap
  flatten
  fc = linear(classes)
}}
"""


def _stem(net) -> list[str]:
    return [n.op.kind for n in net.ir.walk() if n.block is None][1:8]


def test_conv_norm_post_normalises_a_deep_stem_under_pre_activation():
    with pytest.warns(resdsl.ResdslWarning):
        bare = resdsl.compile(DEEP_STEM.format(first="", second=""))
    assert _stem(bare)[:3] == ["conv", "conv", "conv"]
    assert [w.code for w in bare.warnings] == ["W0001", "W0001"]

    net = resdsl.compile(DEEP_STEM.format(first=", norm=post", second=", norm=post"))
    assert net.warnings == []
    assert _stem(net) == ["conv", "batchnorm", "relu", "conv", "batchnorm", "relu", "conv"]
    model = net.to_torch()
    stem = [k.split(".")[0] for k in model.state_dict() if not k.startswith(("layer", "fc", "bn_final"))]
    assert list(dict.fromkeys(stem)) == ["conv1_1", "bn1_1", "conv1_2", "bn1_2", "conv1_3"]
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    # The choice survives formatting.
    assert "conv1_1 = conv(16, k=3, s=2, norm=post)" in format_source(
        resdsl.load(DEEP_STEM.format(first=", norm=post", second=""))
    )


def test_conv_norm_false_says_a_linear_chain_is_meant():
    net = resdsl.compile(DEEP_STEM.format(first=", norm=false", second=", norm=false"))
    assert net.warnings == []
    assert _stem(net)[:3] == ["conv", "conv", "conv"]


def test_norm_post_applies_under_every_order_and_no_bundled_spec_warns():
    for order_name in ("post", "none", "relu_preact"):
        net = resdsl.compile(DEEP_STEM.format(first=", norm=post", second="").replace("= pre", "= " + order_name))
        assert _stem(net)[:3] == ["conv", "batchnorm", "relu"], order_name
    for spec in sorted(SPECS.glob("*.res")):
        deep = spec.name.startswith("preact_resnet")  # ResNet-164 and -1001: one block a stage is enough here
        assert resdsl.compile(spec, {"n": "1"} if deep else None).warnings == [], spec.name
    with pytest.warns(resdsl.ResdslWarning):
        # timm's deep stem: conv1.0 and conv1.3 meet with nothing between; conv1.6 says norm=false.
        assert [w.code for w in resdsl.compile(SPECS / "resnet50d.res", {"norm": "pre"}).warnings] == ["W0001"]


def test_norm_takes_true_false_or_post_only():
    with pytest.raises(resdsl.ResdslError) as info:
        resdsl.compile(DEEP_STEM.format(first=", norm=1", second=""))
    assert "`conv` argument `norm` is true, false or post, got `1`" in str(info.value)


NESTED = """
block squeeze(c, rd) {             # timm's SEModule, as a block
  gap
  fc1 = conv(rd, k=1, bias=true, norm=false)
  act = relu
  fc2 = conv(c, k=1, bias=true, norm=false)
  gate = sigmoid
  mul input
}

block se_basic(planes, stride=1) expansion 1 {
  conv1 = conv(planes, k=3, s=stride)
  conv2 = conv(planes, k=3)
  se = squeeze(planes, planes // 4)  # a block calling a block
  add input
}

network nested {
  input 3x32x32
  classes 10
  conv1 = seq {                    # timm's deep stem
    conv(16, k=3, s=2)
    conv(16, k=3)
    conv(32, k=3, norm=false)
  }
  bn1 = batchnorm
  act1 = relu
  layer1 = se_basic(32) x 2
  layer2 = se_basic(64) x 1 first(stride=2)
  gap
  flatten
  fc = linear(classes)
}
"""


class _SE(torch.nn.Module):
    def __init__(self, c, rd):
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Conv2d(c, rd, 1), torch.nn.Conv2d(rd, c, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))


class _Block(torch.nn.Module):
    def __init__(self, cin, planes, stride=1):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(planes)
        self.conv2 = torch.nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(planes)
        self.se = _SE(planes, planes // 4)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = torch.nn.Sequential(
                torch.nn.Conv2d(cin, planes, 1, stride, bias=False), torch.nn.BatchNorm2d(planes)
            )

    def forward(self, x):
        out = self.se(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


class _Reference(torch.nn.Module):
    """What NESTED means, written out by hand as timm writes it."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, 1, 1, bias=False),
        )  # fmt: skip
        self.bn1 = nn.BatchNorm2d(32)
        self.layer1 = nn.Sequential(_Block(32, 32), _Block(32, 32))
        self.layer2 = nn.Sequential(_Block(32, 64, 2))
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(x.mean((2, 3)))


def test_sequences_blocks_in_blocks_and_mul_give_timms_modules():
    net = resdsl.compile(NESTED)
    model = net.to_torch().eval()
    reference = _Reference().eval()
    keys = list(reference.state_dict())
    assert list(model.state_dict()) == keys  # the same keys, in the same order
    assert "conv1.3.weight" in keys and "layer1.0.se.fc2.bias" in keys
    torch.manual_seed(0)
    state = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in reference.state_dict().items()}
    state = {k: v.abs() + 0.5 if k.endswith("running_var") else v for k, v in state.items()}
    reference.load_state_dict(state)
    model.load_state_dict(state)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-4)
    assert net.params == sum(p.numel() for p in reference.parameters())
    source = net.torch_source
    assert "class Squeeze(nn.Module)" in source and "self.se = Squeeze(planes, planes, planes // 4)" in source
    assert source.index("class Squeeze") < source.index("class SeBasic")  # a class before the classes using it


def test_activation_and_norm_are_policies():
    sigmoid = resdsl.compile(SPECS / "resnet18.res", {"act": "sigmoid"})
    assert {n.op.kind for n in sigmoid.ir if n.origin is Origin.NORM} == {"batchnorm", "sigmoid"}
    with pytest.raises(resdsl.ResdslError, match="not a act policy"):
        resdsl.compile(SPECS / "resnet18.res", {"act": "conv"})


PRUNED = """
block slim(w1, w2, width, stride=1) {  # a bottleneck with its own widths, as a pruned network has them
  conv1 = conv(w1, k=1)
  conv2 = conv(w2, k=3, s=stride)
  conv3 = conv(width, k=1)
  add input
}

network pruned {
  input 3x16x16
  classes 10
  policy projection = avgpool
  conv1 = conv(16, k=3)
  layer1 = seq {
    slim(7, 5, 12)
    slim(9, 4, 12)
  }
  layer2 = seq {
    slim(11, 6, 24, stride=2)
    slim(8, 8, 24) x 2
  }
  gap
  flatten
  fc = linear(classes)
}
"""


class _Slim(torch.nn.Module):
    def __init__(self, cin, w1, w2, width, stride=1):
        super().__init__()
        nn = torch.nn
        self.conv1, self.bn1 = nn.Conv2d(cin, w1, 1, bias=False), nn.BatchNorm2d(w1)
        self.conv2, self.bn2 = nn.Conv2d(w1, w2, 3, stride, 1, bias=False), nn.BatchNorm2d(w2)
        self.conv3, self.bn3 = nn.Conv2d(w2, width, 1, bias=False), nn.BatchNorm2d(width)
        self.downsample = None
        if stride != 1 or cin != width:
            pool = (
                nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False) if stride > 1 else nn.Identity()
            )
            self.downsample = nn.Sequential(pool, nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn3(self.conv3(torch.relu(self.bn2(self.conv2(out)))))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


def test_a_seq_of_blocks_is_a_stage_whose_blocks_differ():
    net = resdsl.compile(PRUNED)
    nn = torch.nn
    reference = nn.Module()
    reference.conv1, reference.bn1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16)
    reference.layer1 = nn.Sequential(_Slim(16, 7, 5, 12), _Slim(12, 9, 4, 12))
    reference.layer2 = nn.Sequential(_Slim(12, 11, 6, 24, 2), _Slim(24, 8, 8, 24), _Slim(24, 8, 8, 24))
    reference.fc = nn.Linear(24, 10)
    model = net.to_torch().eval()
    reference.eval()
    assert list(model.state_dict()) == list(reference.state_dict())  # layer2.0 … layer2.2 across two calls
    assert [(k, v.shape) for k, v in model.state_dict().items()] == [
        (k, v.shape) for k, v in reference.state_dict().items()
    ]
    torch.manual_seed(0)
    state = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in reference.state_dict().items()}
    state = {k: v.abs() + 0.5 if k.endswith("running_var") else v for k, v in state.items()}
    model.load_state_dict(state)
    reference.load_state_dict(state)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = reference.fc(
            reference.layer2(reference.layer1(torch.relu(reference.bn1(reference.conv1(x))))).mean((2, 3))
        )
        torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-4)
    source = net.torch_source
    assert "Slim(12, 11, 6, 24, stride=2, downsample=True),\n            Slim(24, 8, 8, 24)," in source


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("s = seq {\n    slim(7, 5, 12)\n    conv(12, k=1)\n  }", "a `seq` holds ops or blocks, not both"),
        ("s = seq {\n    a = slim(7, 5, 12)\n  }", "the blocks of a `seq` are numbered, not named"),
    ],
    ids=["ops-and-blocks", "named-block"],
)
def test_a_seq_of_blocks_holds_unnamed_block_calls_only(body, message):
    spec = PRUNED.split("\nnetwork ")[0] + f"\nnetwork n {{\n  input 3x16x16\n  conv1 = conv(12, k=3)\n  {body}\n}}\n"
    with pytest.raises(resdsl.ResdslError, match=message) as caught:
        resdsl.compile(spec)
    assert caught.value.diagnostics[0].code == "E0123"


def test_numbers_in_scientific_notation():
    """`1e-3`, `5E-4`, `1.5e2` are floats as in Python; `fmt` keeps them as written; too large is E0108."""
    text = (
        "network n {\n  input 3x8x8\n  c = conv(8, k=3)\n  bn = batchnorm(eps=1e-3, momentum=5E-4)\n"
        "  dropout(p=1.5e-1)\n  gap\n  flatten\n  fc = linear(10)\n}\n"
    )
    net = resdsl.compile(text)
    bn, dropout = by_path(net)["bn"].op, next(n.op for n in net.ir if n.op.kind == "dropout")
    assert (bn.eps, bn.momentum, dropout.p) == (1e-3, 5e-4, 0.15)
    assert "nn.BatchNorm2d(8, eps=0.001, momentum=0.0005)" in net.torch_source
    assert format_source(Source("<text>", text)) == text  # kept as written, not as repr() writes it
    with pytest.raises(resdsl.ResdslError) as too_large:
        resdsl.compile(text.replace("1e-3", "1e19"))
    assert [d.code for d in too_large.value.diagnostics] == ["E0108"]
    with pytest.raises(resdsl.ResdslError) as not_int:
        resdsl.compile(text.replace("conv(8", "conv(1e1"))  # 10.0 is a float: channels are integers
    assert [d.code for d in not_int.value.diagnostics] == ["E0107"]


def test_a_stage_belongs_in_the_network_and_a_templates_mistake_is_reported_once():
    spec = (
        'use "std/blocks.res"\nblock two(c) {\n  body = seq {\n    basic(c)\n    basic(c)\n  }\n}\n'
        "block bad(out) {\n  conv1 = conv(out, k=1)\n}\n"
        "network n {\n  input 3x16x16\n  conv1 = conv(8, k=3)\n  a = two(8)\n  b = bad(8)\n  c = bad(8)\n}\n"
    )
    with pytest.raises(resdsl.ResdslError) as caught:
        resdsl.compile(spec)
    # The stage in a block is E0116; `bad`'s reserved parameter name is reported at its first use only.
    found = [(d.code, d.span.source.line_col(d.span.start)[0]) for d in caught.value.diagnostics]
    assert found == [("E0116", 3), ("E0106", 8)]


@pytest.mark.parametrize(
    "spec",
    [
        # A conv's mistake leaves the block's add with no branch: not reported again as E0206.
        "block b(c) {\n  conv(c, k=3, bogus=1)\n  add input\n}\nnetwork n {\n  input 3x8x8\n  b(8)\n}\n",
        "block b(c) {\n  conv(c, k=3, bogus=1)\n  concat input\n}\nnetwork n {\n  input 3x8x8\n  b(8)\n}\n",
        # An inner block's mistake (a reserved parameter) leaves the outer block's add with no branch.
        "block g(out) {\n  conv(out, k=1)\n}\nblock gb(c) {\n  g1 = g(c)\n  add input\n}\n"
        "network n {\n  input 3x8x8\n  gb(8)\n}\n",
        # A failed statement's names are not then unknown (E0205) to the statements that read them.
        "block b(c) {\n  conv(c, k=3, bogus=1)\n}\nnetwork n {\n  input 3x8x8\n  l = b(8)\n"
        "  conv(8, k=1) from input\n  add l\n}\n",
        "network n {\n  input 3x8x8\n  conv1 = conv(8, k=3)\n  conv1, b = split\n  concat b from conv1\n}\n",
    ],
)
def test_a_failed_statement_is_reported_once_not_again_where_it_is_read(spec):
    with pytest.raises(resdsl.ResdslError) as caught:
        resdsl.compile(spec)
    assert len(caught.value.diagnostics) == 1, caught.value
    assert caught.value.diagnostics[0].code in ("E0102", "E0106", "E0104")


def test_an_add_of_a_tensor_to_itself_after_an_unrelated_mistake_is_still_reported():
    spec = "network n {\n  input 3x8x8\n  conv(8, k=3, bogus=1)\n  a = conv(8, k=3)\n  add a\n}\n"
    with pytest.raises(resdsl.ResdslError) as caught:
        resdsl.compile(spec)
    assert [d.code for d in caught.value.diagnostics] == ["E0102", "E0206"]
