"""Generated PyTorch source as a careful person writes it: formatted, in place where autograd allows, with arguments."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, SPEC_SAMPLE, SPECS

import resdsl

NORMS = ("post", "bn_after_add", "relu_before_add", "relu_preact", "pre", "none")
DATA = sorted((ROOT / "tests" / "data").rglob("*.res"))


def test_generated_files_pass_ruff_with_the_projects_settings(tmp_path):
    for spec in [*SPEC_SAMPLE, *DATA]:
        (tmp_path / f"{spec.stem}.py").write_text(resdsl.compile(spec).torch_source)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    for command in (["format", "--check", "."], ["check", "."]):
        result = subprocess.run([sys.executable, "-m", "ruff", *command], cwd=tmp_path, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_relus_run_in_place_and_adds_accumulate_where_nothing_else_reads_the_tensor():
    source = resdsl.compile(SPECS / "resnet50.res").torch_source
    assert "nn.ReLU(inplace=True)" in source and "out += identity" in source
    # Under relu_before_add the add's main operand is a ReLU's output, which autograd keeps: no `+=` there.
    source = resdsl.compile(SPECS / "resnet18.res", {"norm": "relu_before_add"}).torch_source
    assert "out += " not in source and "out = out + identity" in source


@pytest.mark.slow
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("spec", SPEC_SAMPLE, ids=lambda p: p.stem)
def test_backward_runs_through_every_spec_under_every_norm_policy(spec, norm):
    """In-place ops never overwrite what autograd needs: a training step runs, and every parameter gets a gradient."""
    torch.manual_seed(0)
    settings = {"norm": norm, "input": "3x32x32"}
    if "let n =" in spec.read_text():  # the CIFAR depths: one block a stage shows the same code
        settings["n"] = "1"
    model = resdsl.compile(spec, settings).to_torch().train()
    out = model(torch.randn(2, 3, 32, 32))
    outputs = out.values() if isinstance(out, dict) else [out]  # a network's named outputs (an FPN): all of them
    loss = sum(o.square().mean() for o in outputs)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_the_network_takes_num_classes_and_in_chans():
    from resdsl.backends.torch_src import load_module

    net = resdsl.compile(SPECS / "resnet18.res")
    cls = load_module(net.torch_source, net.ir).Model
    model = cls(num_classes=7, in_chans=1).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 64, 64)).shape == (2, 7)
    assert cls().fc.out_features == 1000 and cls().conv1.in_channels == 3


def test_timms_model_api():
    model = resdsl.create_model("resnet50", input="3x64x64").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (2, 2048, 2, 2) and model.num_features == 2048
        assert model.forward_head(features, pre_logits=True).shape == (2, 2048)
        torch.testing.assert_close(model.forward_head(features), model(x))
    assert model.get_classifier() is model.fc
    model.reset_classifier(10)
    assert model(x).shape == (2, 10)
    model.reset_classifier(0)
    assert model(x).shape == (2, 2048)


def test_features_only_returns_the_stage_outputs_with_their_info():
    model = resdsl.create_model("resnet18", features_only=True, out_indices=(1, 2, 4), input="3x64x64").eval()
    assert [(f["module"], f["num_chs"], f["reduction"]) for f in model.feature_info] == [
        ("layer1", 64, 4),
        ("layer2", 128, 8),
        ("layer4", 512, 32),
    ]
    with torch.no_grad():
        maps = model(torch.randn(1, 3, 64, 64))
    assert [tuple(m.shape) for m in maps] == [(1, 64, 16, 16), (1, 128, 8, 8), (1, 512, 2, 2)]
    assert not any(key.startswith("fc.") for key in model.state_dict())  # no head, as timm's
    scripted = torch.jit.script(model)
    assert len(scripted(torch.randn(1, 3, 64, 64))) == 3


def test_features_only_taps_the_members_of_a_group_one_by_one():
    # timm's ResNetV2 taps stem.conv and each of stages.0 ... inside the groups `stem` and `stages`.
    model = resdsl.create_model("resnetv2_50", features_only=True, input="3x64x64").eval()
    assert [(f["module"], f["num_chs"], f["reduction"]) for f in model.feature_info] == [
        ("stem.conv", 64, 2),
        ("stages.0", 256, 4),
        ("stages.1", 512, 8),
        ("stages.2", 1024, 16),
        ("act", 2048, 32),
    ]
    whole = resdsl.create_model("resnetv2_50", input="3x64x64").eval()
    whole.load_state_dict(model.state_dict(), strict=False)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = model(x)
        stem = whole.stem.conv(x)
        stage0 = whole.stages[0](whole.stem.pool(stem))
        torch.testing.assert_close(maps[0], stem)
        torch.testing.assert_close(maps[1], stage0)
        torch.testing.assert_close(maps[-1], whole.forward_features(x))
    assert [tuple(m.shape) for m in maps] == [(1, 64, 32, 32), (1, 256, 16, 16), (1, 512, 8, 8), (1, 1024, 4, 4),
                                              (1, 2048, 2, 2)]  # fmt: skip
    regnet = resdsl.create_model("regnety_016", features_only=True, input="3x64x64")
    assert [f["module"] for f in regnet.feature_info] == ["stem", "s1", "s2", "s3", "s4"]  # timm's, groups whole


@pytest.mark.parametrize(
    ("name", "widths"),
    [
        ("res2net50_26w_4s", (256, 512, 1024, 2048)),
        ("resnest14d", (256, 512, 1024, 2048)),
        ("skresnet18", (64, 128, 256, 512)),
    ],
)
def test_features_only_of_the_split_families_are_timms(name, widths):
    """timm's Res2Net, ResNeSt and SKNet are its ResNet class: the same feature_info (act1 at 2, layer1 … layer4),
    which FPN backbones read; the last map is what the classifier's features are."""
    model = resdsl.create_model(name, features_only=True, input="3x64x64").eval()
    expected = [("act1", 64, 2)] + [(f"layer{i + 1}", c, 4 * 2**i) for i, c in enumerate(widths)]
    assert [(f["module"], f["num_chs"], f["reduction"]) for f in model.feature_info] == expected
    whole = resdsl.create_model(name, input="3x64x64").eval()
    loaded = whole.load_state_dict(model.state_dict(), strict=False)
    assert not loaded.unexpected_keys and sorted(loaded.missing_keys) == ["fc.bias", "fc.weight"]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = model(x)
        torch.testing.assert_close(maps[-1], whole.forward_features(x))
    assert [m.shape[1:] for m in maps] == [(c, 64 // r, 64 // r) for _, c, r in expected]


def test_checkpoint_path_loads_torchvision_keys_strictly(tmp_path):
    source = resdsl.create_model("resnet18")
    torch.save({"state_dict": source.state_dict()}, tmp_path / "w.pth")  # a training checkpoint's wrapping
    model = resdsl.create_model("resnet18", checkpoint_path=tmp_path / "w.pth")
    pairs = zip(model.state_dict().values(), source.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    features = resdsl.create_model("resnet18", features_only=True, checkpoint_path=tmp_path / "w.pth")
    assert torch.equal(features.conv1.weight, source.conv1.weight)
    torch.save({"conv1.weight": source.conv1.weight}, tmp_path / "partial.pth")
    with pytest.raises(RuntimeError, match="Missing key"):
        resdsl.create_model("resnet18", checkpoint_path=tmp_path / "partial.pth")


def test_conv_bn_relu_fuse_for_quantization():
    model = resdsl.create_model("resnet18", input="3x64x64").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        fused = torch.ao.quantization.fuse_modules(
            model, [["conv1", "bn1", "act1"], ["layer1.0.conv1", "layer1.0.bn1", "layer1.0.act1"]]
        )
        assert isinstance(fused.act1, torch.nn.Identity) and isinstance(fused.bn1, torch.nn.Identity)
        torch.testing.assert_close(fused(x), expected, rtol=1e-4, atol=1e-4)


def test_initialisation_is_torchvisions_he_normal_and_zero_init_last():
    torch.manual_seed(0)
    model = resdsl.create_model("resnet50", zero_init_last=True)
    conv = model.layer3[0].conv2.weight  # 256 out, 3x3: fan-out 2304
    assert abs(conv.std().item() - (2 / (256 * 9)) ** 0.5) < 0.02 * (2 / (256 * 9)) ** 0.5
    assert abs(conv.mean().item()) < 1e-3
    assert torch.all(model.layer1[0].bn1.weight == 1) and torch.all(model.layer1[0].bn1.bias == 0)
    assert torch.all(model.layer1[0].bn3.weight == 0)  # the last norm of each branch starts at zero
    plain = resdsl.create_model("resnet50")
    assert torch.all(plain.layer1[0].bn3.weight == 1)
