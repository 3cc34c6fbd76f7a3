"""The generated modules in the tools people already use: compile, script, AMP, DDP, pickling."""

from __future__ import annotations

import io
import pickle

import pytest
import torch

import resdsl

SMALL = {"num_classes": 10}
SMALL_SPEC = "cifar_resnet20"  # option-A shortcuts: the parameter-free path is exercised too


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return resdsl.create_model(SMALL_SPEC, **SMALL).eval()


@pytest.fixture(scope="module")
def batch():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_registry_lists_bundled_specs_and_creates_models():
    names = resdsl.list_models()
    assert {"resnet18", "resnet50", "wide_resnet50_2"} <= set(names)
    assert names == sorted(names)
    assert {"resnet101", "resnet101_v1", "resnet152", "resnet152_v1", "resnet18"} <= set(resdsl.list_models("resnet1*"))
    assert all(name.startswith("resnet1") for name in resdsl.list_models("resnet1*"))
    model = resdsl.create_model("resnet50", num_classes=10, in_chans=1)
    assert model.conv1.weight.shape == (64, 1, 7, 7)
    assert model.fc.out_features == 10
    pre = resdsl.create_model("resnet18", norm="pre")
    assert hasattr(pre, "bn_final")
    with pytest.raises(resdsl.ResdslError, match="no bundled model `resnet05`") as info:
        resdsl.create_model("resnet05")
    assert info.value.diagnostics[0].help == "did you mean `resnet50`?"


def test_torch_compile_fullgraph_same_outputs(model, batch):
    compiled = torch.compile(model, fullgraph=True)  # raises on any graph break
    with torch.no_grad():
        torch.testing.assert_close(compiled(batch), model(batch), atol=1e-5, rtol=1e-5)


def test_torch_jit_script(model, batch):
    scripted = torch.jit.script(model)
    with torch.no_grad():
        torch.testing.assert_close(scripted(batch), model(batch), atol=0, rtol=0)


def test_channels_last(model, batch):
    other = resdsl.create_model(SMALL_SPEC, **SMALL).eval()
    other.load_state_dict(model.state_dict())
    other = other.to(memory_format=torch.channels_last)
    with torch.no_grad():
        out = other(batch.to(memory_format=torch.channels_last))
        torch.testing.assert_close(out, model(batch), atol=1e-4, rtol=1e-4)


def test_autocast_bfloat16_on_cpu(model, batch):
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(batch)
    assert out.dtype == torch.bfloat16
    with torch.no_grad():
        reference = model(batch)
    assert torch.allclose(out.float(), reference, atol=0.15, rtol=0.1)


def test_sync_batchnorm_conversion(model):
    converted = torch.nn.SyncBatchNorm.convert_sync_batchnorm(resdsl.create_model(SMALL_SPEC, **SMALL))
    norms = [m for m in converted.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms and all(isinstance(m, torch.nn.SyncBatchNorm) for m in norms)
    assert list(converted.state_dict()) == list(model.state_dict())


def test_pickle_and_state_dict_round_trip(model, batch):
    clone = pickle.loads(pickle.dumps(model))
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = resdsl.create_model(SMALL_SPEC, **SMALL).eval()
    fresh.load_state_dict(torch.load(buffer), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(clone(batch), model(batch), atol=0, rtol=0)
        torch.testing.assert_close(fresh(batch), model(batch), atol=0, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_forward_matches_cpu(model, batch):
    gpu = resdsl.create_model(SMALL_SPEC, **SMALL).eval()
    gpu.load_state_dict(model.state_dict())
    with torch.no_grad():
        out = gpu.cuda()(batch.cuda()).cpu()
        torch.testing.assert_close(out, model(batch), atol=1e-3, rtol=1e-3)
