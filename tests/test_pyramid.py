"""Feature pyramids and U-Net skips: `from`, `upsample`, `conv_transpose`, `concat`, separate-path adds and
`return` (several named outputs), in every backend, with the bundled FPN (specs/fpn_resnet50.res)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import SPECS

import resdsl
from resdsl.diagnostics import ResdslError, Source
from resdsl.frontend.format import format_source as _format


def format_source(text: str, name: str) -> str:
    return _format(Source(name, text))


FPN = SPECS / "fpn_resnet50.res"


def codes(text: str) -> list[str]:
    with pytest.raises(ResdslError) as info:
        resdsl.compile(text)
    return [d.code for d in info.value.diagnostics]


def outputs_agree(net, size: tuple[int, ...] | None = None) -> dict[str, np.ndarray]:
    """The PyTorch module and onnxruntime give the same named outputs (relative 1e-4); returns them."""
    torch.manual_seed(0)
    model = net.to_torch().eval()
    assert sum(p.numel() for p in model.parameters()) == net.params
    with torch.no_grad():
        for name, buffer in model.named_buffers():  # non-trivial BatchNorm statistics
            if name.endswith("running_var"):
                buffer.uniform_(0.5, 1.5)
            elif name.endswith("running_mean"):
                buffer.uniform_(-0.2, 0.2)
        x = torch.randn(2, *(size or net.input_shape), generator=torch.Generator().manual_seed(1))
        out = model(x)
    expected = {k: v.numpy() for k, v in out.items()} if isinstance(out, dict) else {"output": out.numpy()}
    state = {k: v.numpy() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    proto = net.to_onnx(weights=state)
    onnx.checker.check_model(proto, full_check=True)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == list(expected)
    got = session.run(None, {"input": x.numpy()})
    for (name, want), have in zip(expected.items(), got, strict=True):
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(have, want, rtol=1e-4, atol=1e-4 * scale, err_msg=name)
    return expected


# -- the bundled FPN -------------------------------------------------------------------


def test_fpn_outputs_p2_to_p5():
    net = resdsl.compile(FPN)
    assert net.outputs == {
        "p2": (256, 56, 56),
        "p3": (256, 28, 28),
        "p4": (256, 14, 14),
        "p5": (256, 7, 7),
    }
    # torchvision's resnet_fpn_backbone("resnet50"): the backbone without fc, four 1×1 laterals, four 3×3 outputs.
    assert net.params == 25_557_032 - 2_049_000 + (256 + 512 + 1024 + 2048 + 4) * 256 + 4 * (9 * 256 * 256 + 256)
    # The top-down adds are plain sums: no projection, no activation placed after them.
    sums = [n for n in net.ir if n.op.kind == "sum"]
    assert [n.name for n in sums] == ["m4", "m3", "m2"]
    assert all(n.residual is None and n.branch is None for n in sums)
    assert not any(u.op.kind == "relu" for n in sums for u in net.ir.users(n))
    assert [n.path for n in net.ir if n.shortcut_of is not None and n.op.kind == "conv"] == [
        f"layer{i}.0.downsample.0" for i in range(1, 5)
    ]


def test_fpn_module_returns_a_dict_of_its_outputs():
    net = resdsl.compile(FPN)
    with torch.device("meta"):
        model = net.to_torch()
        out = model(torch.empty(1, 3, 224, 224))
    assert {k: tuple(v.shape) for k, v in out.items()} == {k: (1, *s) for k, s in net.outputs.items()}
    assert [info["module"] for info in model.feature_info] == ["p2", "p3", "p4", "p5"]
    assert [info["reduction"] for info in model.feature_info] == [4, 8, 16, 32]
    source = net.torch_source
    assert 'return {"p2": p2, "p3": p3, "p4": p4, "p5": p5}' in source
    assert 'F.interpolate(lat5, size=lat4.shape[-2:], mode="nearest")' in source
    with torch.device("meta"):
        features = resdsl.create_model(str(FPN), features_only=True, out_indices=(1, 3))
        maps = features(torch.empty(1, 3, 224, 224))
    assert [tuple(m.shape) for m in maps] == [(1, 256, 28, 28), (1, 256, 7, 7)]


def test_fpn_computes_torchvisions_feature_pyramid():
    """torchvision's FeaturePyramidNetwork.forward, written out over the generated module's own layers."""
    model = resdsl.compile(FPN, {"input": "3x96x96"}).to_torch().eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        c = model.maxpool(model.act1(model.bn1(model.conv1(x))))
        stages = []
        for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
            c = layer(c)
            stages.append(c)
        inner = [lat(f) for lat, f in zip((model.lat2, model.lat3, model.lat4, model.lat5), stages, strict=True)]
        blocks = (model.p2, model.p3, model.p4, model.p5)
        last = inner[-1]
        results = [blocks[-1](last)]
        for idx in range(len(inner) - 2, -1, -1):
            top_down = torch.nn.functional.interpolate(last, size=inner[idx].shape[-2:], mode="nearest")
            last = inner[idx] + top_down
            results.insert(0, blocks[idx](last))
        got = model(x)
    assert list(got) == ["p2", "p3", "p4", "p5"]
    for want, have in zip(results, got.values(), strict=True):
        torch.testing.assert_close(have, want)


def test_fpn_pytorch_and_onnx_agree():
    net = resdsl.compile(FPN, {"input": "3x128x128"})
    out = outputs_agree(net)
    assert [v.shape for v in out.values()] == [(2, 256, 32, 32), (2, 256, 16, 16), (2, 256, 8, 8), (2, 256, 4, 4)]


def test_fpn_scripts_and_compiles():
    model = resdsl.compile(FPN, {"input": "3x64x64"}).to_torch().eval()
    scripted = torch.jit.script(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for key, value in scripted(x).items():
            torch.testing.assert_close(value, model(x)[key])


def test_fpn_summary_diagram_and_format():
    net = resdsl.compile(FPN)
    summary = net.summary()
    assert "outputs     p2 256×56×56, p3 256×28×28, p4 256×14×14, p5 256×7×7" in summary
    stage = net.to_dot(level="stage")
    for name in ("p2", "p3", "p4", "p5"):
        assert f"output {name}" in stage
    assert stage.count(">upsample<") == 3 and "lat5" in stage and "dotted = the size to upsample to" in stage
    assert '"output" [' not in stage and "\toutput [" not in stage  # no single sink besides the named ones
    assert "output p2" in net.to_dot(level="block") and "output p2" in net.to_dot(level="op")
    assert "output p2" in net.to_html()
    text = FPN.read_text()
    assert format_source(text, FPN.name) == text


@pytest.mark.parametrize("command", [["check"], ["summary"], ["render", "--format", "dot", "-o", "-"]])
def test_check_summary_render_never_import_torch_or_onnx(command, tmp_path):
    program = (
        "import sys\n"
        "from resdsl.cli import main\n"
        f"code = main([{command[0]!r}, {str(FPN)!r}, *{command[1:]!r}])\n"
        "heavy = [m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
        "sys.exit(code)\n"
    )
    run = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "HEAVY []" in run.stdout


# -- each new op: shapes, MACs by hand, both backends --------------------------------------


def small(body: str, shape: str = "4x6x6", outputs: str = "") -> resdsl.Network:
    return resdsl.compile(f"network n {{\n  input {shape}\n  policy norm = none\n{body}\n{outputs}}}\n")


def node(net, kind: str):
    return next(n for n in net.ir if n.op.kind == kind)


def test_upsample_scale_modes_and_macs():
    for mode in ("nearest", "bilinear"):
        net = small(f"  a = conv(8, k=3)\n  upsample(3, mode={mode})\n  gap\n  flatten")
        up = node(net, "upsample")
        assert up.shape == (8, 18, 18) and up.op.scale == 3 and up.op.mode == mode
        assert net.ir.graph.in_degree(up) == 1
        # MACs: the conv's 8·6·6·(4·3·3) only; resizing multiplies no weights.
        assert net.macs == 8 * 6 * 6 * 4 * 3 * 3
        outputs_agree(net)
    assert "2× upsample" in small("  upsample\n  conv(2, k=1)").to_dot(level="op")


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("size", ["5x5", "6x9", "12x12"])
def test_upsample_to_another_tensors_size(mode, size):
    """To any size: whole factors (scales, or nearest's repeat) and the rest (sizes from the batch)."""
    h, w = map(int, size.split("x"))
    body = (
        f"  fine = conv(3, k=1)\n  coarse = maxpool(k=2) from input\n  c = conv(3, k=1)\n"
        f"  up = upsample(to=fine, mode={mode})\n  add fine\n  flatten"
    )
    net = small(body, f"4x{h}x{w}")
    up = node(net, "upsample")
    assert up.shape == (3, h, w) and up.op.sized
    assert node(net, "sum").shape == (3, h, w)
    assert net.macs == 3 * h * w * 4 + 3 * (h // 2) * (w // 2) * 4  # the two 1×1 convs
    outputs_agree(net)


def test_conv_transpose_shapes_macs_and_backends():
    body = "  up = conv_transpose(6, k=3, s=2, p=1, output_padding=1, groups=2, bias=true)\n  relu\n  gap\n  flatten"
    net = small(body)
    up = node(net, "conv_transpose")
    # (6 - 1)·2 - 2·1 + (3 - 1) + 1 + 1 = 12
    assert up.shape == (6, 12, 12)
    # Every input position scatters k·k·(out / groups) products per input channel: 4·6·6 · 3·3 · 3.
    assert net.macs == 4 * 6 * 6 * 3 * 3 * 3
    assert net.params == 4 * 3 * 3 * 3 + 6  # weight (in, out / groups, k, k) and a bias
    assert "nn.ConvTranspose2d(in_chans, 6, 3, stride=2, padding=1, output_padding=1, groups=2)" in net.torch_source
    assert "3×3 transposed conv, 6, stride 2, groups 2" in net.to_dot(level="op")
    outputs_agree(net)


def test_concat_shapes_macs_and_backends():
    body = "  a = conv(3, k=1)\n  b = conv(5, k=3) from input\n  concat a, input\n  gap\n  flatten"
    net = small(body)
    cat = node(net, "concat")
    assert cat.shape == (5 + 3 + 4, 6, 6) and cat.op.count == 3
    assert [o.name for o in net.ir.operands(cat)] == ["b", "a", "x"]
    assert net.macs == 3 * 36 * 4 + 5 * 36 * 4 * 9  # the convs only
    assert "out = torch.cat([out, a, x], 1)" in net.torch_source  # b, a and the input
    outputs_agree(net)


def test_a_unet_with_blocks_reading_named_tensors():
    """Encoder blocks, a transposed conv up, concat skips, a block call reading a named tensor."""
    spec = """
use "std/blocks.res"

network unet {
  input 3x32x32
  stem = conv(16, k=3)
  enc1 = basic(16)
  enc2 = basic(32, stride=2)
  mid = basic(64, stride=2)
  up2 = conv_transpose(32, k=2, s=2, bias=true)
  cat2 = concat enc2
  dec2 = basic(32) from cat2
  up1 = upsample(2, mode=bilinear)
  concat enc1
  dec1 = basic(16)
  head = conv(2, k=1, bias=true, norm=false)
  aux = conv(2, k=1, bias=true, norm=false) from mid
  return head, aux
}
"""
    net = resdsl.compile(spec)
    assert net.outputs == {"head": (2, 32, 32), "aux": (2, 8, 8)}
    # dec2 reads the concat (32 + 32 channels): its block projects 64 → 32, as a block's add of its input does.
    assert "dec2.downsample.0" in [n.path for n in net.ir if n.shortcut_of is not None]
    outputs_agree(net)
    model = net.to_torch().train()
    out = model(torch.randn(2, 3, 32, 32))
    sum(v.square().mean() for v in out.values()).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_block_bodies_can_branch():
    """Inside a block, `from` reads a tensor of its body; the residual add's branch is the path to it only."""
    spec = """
block split(c) {
  a = conv(c, k=1)
  b = conv(c, k=3) from input
  concat a
  fuse = conv(c, k=1)
  add input
}
network n {
  input 8x8x8
  layer1 = split(8) x 2
  gap
  flatten
}
"""
    net = resdsl.compile(spec)
    adds = [n for n in net.ir if n.op.kind == "add"]
    assert all(a.residual is not None for a in adds)
    branch = {n.path for n in net.ir if n.branch is adds[0] and n.path and n.origin.value == "spec"}
    assert branch == {"layer1.0.a", "layer1.0.b", "layer1.0.fuse"}
    outputs_agree(net)


# -- adds: residual where the named tensor is upstream, a plain sum where it is not --------------


def test_residual_adds_are_unchanged_and_separate_paths_are_sums():
    chain = small("  a = conv(8, k=3)\n  conv(8, k=3, s=2)\n  add a\n  flatten")
    add = node(chain, "add")
    assert add.residual is not None and chain.ir.operands(add)[1].op.kind == "conv"  # a strided projection
    # A finer tensor's add onto a coarser one from another path: an error, never a strided projection.
    assert codes(
        "network n {\n  input 4x8x8\n  c3 = conv(8, k=3)\n  c4 = conv(8, k=3, s=2)\n"
        "  lat = conv(8, k=1) from c3\n  add c4\n  flatten\n}\n"
    ) == ["E0231"]


def test_a_size_only_operand_does_not_make_an_add_residual():
    """`upsample(to=lat)` reads lat's size only: adding lat afterwards is a top-down sum, not a residual add."""
    net = small("  lat = conv(4, k=1)\n  top = maxpool(k=2) from input\n  upsample(to=lat)\n  add lat\n  flatten")
    assert node(net, "sum").residual is None and not any(n.op.kind == "add" for n in net.ir)


# -- misuse ---------------------------------------------------------------------------------


NET = "network n {{\n  input 4x8x8\n{}\n}}\n"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("  a = conv(4, k=1)\n  upsample(2, to=a)", "E0102"),
        ("  upsample(to=nothing)", "E0205"),
        ("  upsample(to=2)", "E0107"),
        ("  upsample(mode=bicubic)", "E0107"),
        ("  upsample(0)", "E0108"),
        ("  flatten\n  upsample", "E0207"),
        ("  a = gap\n  flatten\n  b = conv(4, k=1) from input\n  upsample(to=a)", "E0133"),
        ("  conv_transpose(4, k=3, s=2, output_padding=2)", "E0108"),
        ("  conv_transpose(6, k=3, groups=4)", "E0204"),
        ("  conv_transpose(4, k=1, p=5)", "E0201"),
        ("  conv_transpose(4, k=3, s=16384)", "E0108"),  # PyTorch's CPU kernel crashes from 2**14 on
        ("  a = conv(4, k=1)\n  conv(4, k=1, s=2) from input\n  concat a", "E0232"),
        ("  concat nothing", "E0205"),
        ("  a = conv(4, k=1)\n  add a, input", "E0102"),
        ("  conv(4, k=1) from nothing", "E0205"),
        ("  a = conv(4, k=1)\n  return input, a", "E0131"),
        ("  a = conv(4, k=1)\n  return a\n  return a", "E0131"),
        ("  a = conv(4, k=1)\n  return b", "E0205"),
        ("  a = conv(4, k=1)\n  b = conv(4, k=1) from input\n  return b", "E0133"),
        ("  a = conv(8, k=1)\n  b = conv(4, k=1) from input\n  add a", "E0231"),
        ("  a = conv(4, k=1)\n  stem.conv = conv(4, k=3) from input\n  add a", "E0124"),
    ],
)
def test_misuse_is_a_located_error(body, code):
    with pytest.raises(ResdslError) as info:
        resdsl.compile(NET.format(body))
    assert [d.code for d in info.value.diagnostics][:1] == [code]
    assert all(d.span is not None for d in info.value.diagnostics)


def test_return_in_a_block_is_e0114():
    spec = "block b(c) {\n  conv(c, k=1)\n  return input\n}\nnetwork n {\n  input 4x8x8\n  b(4)\n}\n"
    assert codes(spec) == ["E0114"]


def test_syntax_round_trips_through_the_formatter():
    text = (
        "network n {\n  input 4x8x8\n  a = conv(4, k=1)\n  s = seq {\n    conv(4, k=3)\n  } from input\n"
        "  c = concat a, input from s\n  up = upsample(to=a, mode=bilinear) from c\n  return up, a\n}\n"
    )
    assert format_source(text, "n.res") == text
    net = resdsl.compile(text)
    assert net.outputs == {"up": (12, 8, 8), "a": (4, 8, 8)}


def test_names_that_begin_with_a_keyword_are_names():
    net = resdsl.compile(
        "network n {\n  input 3x8x8\n  adder = conv(4, k=1)\n  concat1 = relu\n  fromx = conv(4, k=1)\n"
        "  returned = relu\n  multi = add adder\n}\n"
    )
    assert [n.name for n in net.ir.walk() if n.name] == ["x", "adder", "concat1", "fromx", "returned", "multi"]


def test_new_ops_in_a_block_class_written_in_its_terms():
    spec = """
block up(c, s=2) {
  u = conv_transpose(c, k=s, s=s)
  bn = batchnorm
  v = upsample(s, mode=bilinear) from input
  concat bn
  fuse = conv(c, k=1)
}
network n {
  input 4x4x4
  policy norm = none
  a = up(6) x 2 first(s=3)
  b = up(3, s=1)
  gap
  flatten
}
"""
    net = resdsl.compile(spec)
    source = net.torch_source
    assert "self.u = nn.ConvTranspose2d(inplanes, c, s, stride=s, bias=False)" in source
    assert "F.interpolate(x, scale_factor=float(self._upsample1_scale)" in source
    assert "self.fuse = nn.Conv2d(inplanes + c, c, 1, bias=False)" in source
    outputs_agree(net)
    broken = spec.replace("concat bn", "concat u")
    with pytest.raises(ResdslError) as info:
        resdsl.compile(broken)
    assert [d.code for d in info.value.diagnostics] == ["E0133"]  # once, not once per instance


def test_formatter_keeps_a_comment_after_a_seq_read_from_a_tensor():
    messy = "network n {\n  input 3x8x8\n  a = conv(8,k=3)\n  s = seq {\n    conv(8, k=3)\n  }   from a  # note\n}\n"
    tidy = "network n {\n  input 3x8x8\n  a = conv(8, k=3)\n  s = seq {\n    conv(8, k=3)\n  } from a  # note\n}\n"
    assert format_source(messy, "n.res") == tidy
    assert format_source(tidy, "n.res") == tidy


def test_run_saves_every_named_output_to_npz(tmp_path, capsys):
    from resdsl.cli import main

    spec = tmp_path / "two.res"
    spec.write_text(
        "network two {\n  input 3x16x16\n  a = conv(4, k=3)\n  allow_pickle = conv(2, k=3, s=2)\n"
        "  b = upsample(to=a)\n  return a, allow_pickle, b\n}\n"
    )
    model, x, out = tmp_path / "two.onnx", tmp_path / "x.npy", tmp_path / "y.npz"
    assert main(["build", str(spec), "--emit", "onnx", "-o", str(model)]) == 0
    batch = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    np.save(x, batch)
    assert main(["run", str(model), "--input", str(x), "-o", str(out)]) == 0
    assert "outputs a 2x4x16x16, allow_pickle 2x2x8x8, b 2x2x16x16" in capsys.readouterr().err
    expected = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"input": batch})
    saved = np.load(out)
    assert list(saved) == ["a", "allow_pickle", "b"]
    for name, want in zip(saved, expected, strict=True):
        np.testing.assert_array_equal(saved[name], want)
    assert main(["run", str(model), "--input", str(x), "-o", str(tmp_path / "first.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "first.npy"), expected[0])
