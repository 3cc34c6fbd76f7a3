"""Splits, selected branches and groups in blocks: `a, b = split`, `softmax(n)`, `select a, b` and
`convs.0 = ...` in a block (Res2Net, ResNeSt, SKNet), in every backend, by hand arithmetic."""

from __future__ import annotations

import pytest
import torch
from agreement import assert_backends_agree

import resdsl
from resdsl.diagnostics import ResdslError, Source
from resdsl.frontend.format import format_source

OPSETS = (13, 17, 21)  # each checked in onnxruntime against the module, with non-trivial BatchNorm statistics


def small(body: str, shape: str = "8x6x6", blocks: str = "", norm: str = "none") -> resdsl.Network:
    return resdsl.compile(f"{blocks}network n {{\n  input {shape}\n  policy norm = {norm}\n{body}\n}}\n")


def node(net, kind: str):
    return next(n for n in net.ir if n.op.kind == kind)


# -- split --------------------------------------------------------------------------------------


def test_split_cuts_the_channels_into_one_piece_per_name():
    net = small("  a, b, c, d = split\n  concat b, c, d from a\n  conv(4, k=1)\n  gap\n  flatten")
    pieces = [n for n in net.ir.walk() if n.op.kind == "chunk"]
    assert [(n.name, n.shape, n.op.index, n.op.count) for n in pieces] == [
        (name, (2, 6, 6), i, 4) for i, name in enumerate("abcd")
    ]
    # No piece is upstream of another: each reads the split tensor.
    assert {net.ir.operands(p)[0].op.kind for p in pieces} == {"input"}
    assert net.macs == 4 * 36 * 8  # the 1×1 conv only: cutting and joining multiply nothing
    assert "a, b, c, d = x.chunk(4, 1)" in net.torch_source
    assert "split 2/4" in net.to_dot(level="op")
    assert_backends_agree(net, OPSETS)


def test_the_statement_after_a_split_reads_its_first_piece():
    net = small("  conv(6, k=1)\n  x1, x2 = split\n  conv(5, k=1)\n  concat x2\n  gap\n  flatten")
    conv = [n for n in net.ir.walk() if n.op.kind == "conv"][1]
    assert net.ir.operands(conv)[0].name == "x1"
    assert node(net, "concat").shape == (5 + 3, 6, 6)


def test_adds_of_pieces_are_plain_sums():
    """Res2Net's hierarchy: what a conv made of one piece, plus the next piece, is no residual add."""
    net = small("  a, b = split\n  conv(4, k=3)\n  add b\n  conv(4, k=3)\n  concat a\n  gap\n  flatten")
    assert [n.op.kind for n in net.ir if n.op.kind in ("add", "sum")] == ["sum"]
    assert_backends_agree(net, OPSETS)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("  a = split", "E0126"),
        ("  split", "E0126"),
        ("  a, b = conv(4, k=1)", "E0126"),  # several names take a split's pieces only
        ("  a, b.c = split", "E0126"),
        ("  a, b, c = split\n  concat b, c from a", "E0204"),  # 8 channels into 3
        ("  a, a = split", "E0104"),
        ("  a, b = split\n  conv(4, k=1)", "E0133"),  # b is never read
        ("  a, self = split", "E0106"),
    ],
)
def test_split_misuse_is_a_located_error(body, code):
    with pytest.raises(ResdslError) as info:
        small(body + "\n  flatten")
    assert [d.code for d in info.value.diagnostics][:1] == [code]
    assert all(d.span is not None for d in info.value.diagnostics)


def test_a_split_that_does_not_divide_the_channels_is_reported_once():
    """Every piece reads the split tensor: one mistake, reported once (it was reported once per name)."""
    blocks = "block b(c) {\n  conv1 = conv(c, k=1)\n  x1, x2, x3 = split\n  conv(2, k=3)\n  concat x2, x3\n}\n"
    for body, kwargs in [
        ("  a, b, c, d, e = split\n  concat b, c, d, e from a", {}),
        ("  layer1 = b(8) x 2", {"blocks": blocks}),
    ]:
        with pytest.raises(ResdslError) as info:
            small(body + "\n  flatten", **kwargs)
        assert [d.code for d in info.value.diagnostics] == ["E0204"]
        assert "into 5 equal pieces" in str(info.value) or "into 3 equal pieces" in str(info.value)


def test_a_concat_of_flat_tensors_says_they_are_flat():
    with pytest.raises(ResdslError) as info:
        small("  gap\n  flatten\n  a, b = split\n  concat b from a")
    (diag,) = info.value.diagnostics
    assert diag.code == "E0207" and "got the flat 4" in diag.message and "before `flatten`" in diag.help


# -- softmax and select --------------------------------------------------------------------------


SELECTIVE = """
  a = conv(8, k=3)
  b = conv(8, k=3, d=2) from input
  add a
  gap
  fc = conv(16, k=1, bias=true)
  softmax(2)
  select a, b
  gap
  flatten
"""


def test_softmax_across_branches_and_select():
    net = small(SELECTIVE)
    soft, sel = node(net, "softmax"), node(net, "select")
    assert soft.shape == (16, 1, 1) and soft.op.branches == 2
    assert sel.shape == (8, 6, 6) and sel.op.count == 2
    assert [o.name for o in net.ir.operands(sel)] == [None, "a", "b"]  # the weights, then the branches
    # MACs: the three convs only (softmax and the weighted sum multiply no weights).
    assert net.macs == 2 * 8 * 36 * 8 * 9 + 16 * 8
    source = net.torch_source
    assert ".unflatten(1, (2, -1)).softmax(1).flatten(1, 2)" in source
    assert "(torch.stack([a, b], 1) * out.unflatten(1, (2, -1))).sum(1)" in source
    dot = net.to_dot(level="op")
    assert "softmax over 2" in dot and "select of 2" in dot
    assert_backends_agree(net, OPSETS)


def test_select_of_three_branches_chains_its_sums():
    """Three paths (SKNet with a third kernel): softmax(3) and three weighted terms, in every backend."""
    net = small(
        "  a = conv(8, k=3)\n  b = conv(8, k=3, d=2) from input\n  c = conv(8, k=3, d=3, p=3) from input\n"
        "  add a\n  add b\n  gap\n  fc = conv(24, k=1, bias=true)\n  softmax(3)\n  select a, b, c\n  gap\n  flatten"
    )
    assert node(net, "select").op.count == 3 and node(net, "softmax").shape == (24, 1, 1)
    assert "(torch.stack([a, b, c], 1) * out.unflatten(1, (3, -1))).sum(1)" in net.torch_source
    assert_backends_agree(net, OPSETS)


def test_select_weighs_each_branch_by_its_chunk():
    """By hand: weights 1 for the first branch and 0 for the second select the first branch exactly."""
    net = small(
        "  a = conv(2, k=1)\n  b = conv(2, k=1) from input\n  add a\n  gap\n  w = conv(4, k=1)\n"
        "  softmax(2)\n  select a, b\n  flatten",
        shape="3x2x2",
    )
    model = net.to_torch().eval()
    with torch.no_grad():
        model.w.weight.zero_()
        model.w.bias = None
        x = torch.randn(1, 3, 2, 2)
        out = model(x)
        a, b = model.a(x), model.b(x)
    # Zero logits: the softmax gives 1/2 to each branch.
    torch.testing.assert_close(out, ((a + b) / 2).flatten(1))


def test_softmax_is_a_softmax_per_channel_across_branches():
    net = small("  conv(6, k=1)\n  softmax(3)\n  flatten", shape="2x1x1")
    model = net.to_torch().eval()
    with torch.no_grad():
        weights = model(torch.randn(4, 2, 1, 1)).reshape(4, 3, 2)
    torch.testing.assert_close(weights.sum(1), torch.ones(4, 2))
    assert (weights > 0).all()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("  conv(6, k=1)\n  softmax(4)", "E0204"),
        ("  a = conv(8, k=1)\n  b = conv(4, k=1) from input\n  conv(16, k=1) from a\n  select a, b", "E0233"),
        ("  a = conv(8, k=1)\n  b = conv(8, k=1) from input\n  conv(8, k=1) from a\n  select a, b", "E0233"),
        ("  a = conv(8, k=1)\n  conv(8, k=1)\n  select a", "E0102"),
        ("  softmax", "E0103"),
        ("  softmax(0)", "E0108"),
    ],
)
def test_softmax_and_select_misuse_is_a_located_error(body, code):
    with pytest.raises(ResdslError) as info:
        small(body + "\n  flatten")
    assert [d.code for d in info.value.diagnostics][:1] == [code]


# -- groups in a block ---------------------------------------------------------------------------


RES2 = """
block res2(w) {
  conv1 = conv(w * 2, k=1)
  sp1, sp2 = split
  convs.0 = conv(w, k=3)
  add sp2
  convs.1 = conv(w, k=3)
  concat convs.1 from convs.0
  conv3 = conv(w * 2, k=1)
  add input
}
"""


def test_a_blocks_numbered_group_is_a_module_list_with_its_norms_beside_it():
    net = small("  layer1 = res2(4) x 2\n  gap\n  flatten", blocks=RES2, norm="post")
    keys = [k for k in net.to_torch().state_dict() if k.startswith("layer1.0.") and (".convs." in k or ".bns." in k)]
    # ModuleLists registered where their first member is: every conv of `convs`, then the norms.
    assert keys[:4] == [
        "layer1.0.convs.0.weight",
        "layer1.0.convs.1.weight",
        "layer1.0.bns.0.weight",
        "layer1.0.bns.0.bias",
    ]
    source = net.torch_source
    assert "self.convs = nn.ModuleList(\n            [\n" in source and "self.acts = nn.ModuleList(" in source
    assert "sp1, sp2 = t1.chunk(2, 1)" in source
    assert "self.convs[0](sp1)" in source
    # The conv reading the sum of two pieces' paths is built on the piece's width, in the class's terms.
    assert "nn.Conv2d(w, w, 3, padding=1, bias=False)" in source
    # Per block: conv1 8→8 and its BN, two 3×3 convs 4→4 and their BNs, conv3 8→8 and its BN.
    assert net.params == 2 * (8 * 8 + 2 * 8 + 2 * (4 * 4 * 9 + 2 * 4) + 8 * 8 + 2 * 8)
    assert_backends_agree(net, OPSETS)


def test_a_blocks_named_group_is_a_module_dict():
    blocks = """
block attention(c) {
  gap
  attn.fc = conv(c, k=1, bias=true)
  attn.gate = sigmoid
  mul input
}
"""
    net = small("  conv(8, k=3)\n  se = attention(8) x 2\n  gap\n  flatten", blocks=blocks)
    keys = list(net.to_torch().state_dict())
    assert keys[1:3] == ["se.0.attn.fc.weight", "se.0.attn.fc.bias"]
    source = net.torch_source
    assert "self.attn = nn.ModuleDict(\n            {\n" in source and '"gate": nn.Sigmoid()' in source
    assert "self.attn.fc(" in source and "self.attn.gate(" in source
    assert_backends_agree(net, OPSETS)


def test_a_scripted_module_with_groups_splits_and_selects_agrees():
    net = small("  x1, x2 = split\n  concat x2\n" + SELECTIVE)
    model = net.to_torch().eval()
    scripted = torch.jit.script(model)
    x = torch.randn(2, *net.input_shape)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x))


@pytest.mark.parametrize(
    ("block", "code"),
    [
        ("  convs.1 = conv(4, k=1)", "E0124"),  # numbered from 0
        ("  a.b.c = conv(4, k=1)", "E0124"),  # one level
        ("  convs.0 = conv(4, k=1)\n  convs.fc = conv(4, k=1)", "E0124"),  # numbered or named, not both
        ("  convs.0 = conv(4, k=1)\n  convs.0 = conv(4, k=1) from input\n  add convs.0", "E0104"),
        ("  attn.flat = flatten", "E0124"),  # a function
        ("  convs.0 = conv(4, k=1)\n  convs = conv(4, k=1)", "E0104"),  # a group's name is taken
        ("  attn.forward = conv(4, k=1)", "E0106"),
        ("  attn.keys = conv(4, k=1)", "E0106"),  # nn.ModuleDict's own method: the module could not be added
        ("  convs.0 = conv(4, k=1)\n  extra.pop = conv(4, k=1)", "E0106"),
    ],
)
def test_group_misuse_in_a_block_is_a_located_error(block, code):
    spec = f"block b() {{\n{block}\n}}\nnetwork n {{\n  input 4x6x6\n  b()\n}}\n"
    with pytest.raises(ResdslError) as info:
        resdsl.compile(spec)
    assert [d.code for d in info.value.diagnostics][:1] == [code]


def test_a_group_whose_name_a_tensor_took_says_where_the_tensor_is():
    for taken in ("  convs = conv(4, k=1)", "  convs, x2 = split"):
        spec = f"block b() {{\n{taken}\n  convs.0 = conv(2, k=1)\n}}\nnetwork n {{\n  input 4x6x6\n  b()\n}}\n"
        with pytest.raises(ResdslError) as info:
            resdsl.compile(spec)
        (diag,) = info.value.diagnostics
        assert diag.code == "E0104" and diag.span.location == "<text>:3:3"
        assert diag.help == "the first is at <text>:2:3"


def test_a_network_group_member_named_like_a_container_method_is_a_located_error():
    for body in ("  stem.append = conv(4, k=1)", "  stem.pop.conv = conv(4, k=1)"):
        with pytest.raises(ResdslError) as info:
            small(body + "\n  gap\n  flatten")
        assert [d.code for d in info.value.diagnostics] == ["E0106"]
        assert "a method of the module container" in info.value.diagnostics[0].message


def test_the_syntax_round_trips_through_the_formatter():
    text = (
        RES2 + "\nnetwork n {\n  input 8x6x6\n  r = res2(4)\n  x1, x2 = split from input\n  select x1, x2 from r\n}\n"
    )
    assert format_source(Source("n.res", text.lstrip("\n"))) == text.lstrip("\n")


def test_groups_in_a_block_survive_a_projection_moved_to_its_front():
    """`projection_names = named` builds a block's projection first (timm's pre-activation blocks); the groups
    built after it keep their members (a regression: they were written over other modules' lines)."""
    body = "  policy projection_names = named\n  layer1 = res2(8) x 2\n  gap\n  flatten"
    net = small(body, blocks=RES2, norm="post")
    keys = list(net.to_torch().state_dict())
    assert keys[:2] == ["layer1.0.downsample.conv.weight", "layer1.0.downsample.bn.weight"]
    assert "layer1.0.convs.1.weight" in keys and "layer1.0.bns.1.weight" in keys
    assert_backends_agree(net, OPSETS)
