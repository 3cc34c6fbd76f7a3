"""The ONNX backend: valid models, exact logits in onnxruntime, names, determinism, options."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import SPEC_SAMPLE
from recipe import recipe_input, recipe_state

import resdsl
from resdsl import weights
from resdsl.backends import onnx_graph
from resdsl.cli import main
from resdsl.weights import initial, layout

ROOT = Path(__file__).resolve().parent.parent
IMAGENET = sorted(p.name.removesuffix(".out.npy") for p in (ROOT / "tests" / "reference").glob("*.out.npy"))
EVERY_OP = ROOT / "tests" / "data" / "every_op.res"
REFERENCE = ROOT / "tests" / "reference"


def session(model: onnx.ModelProto | Path) -> ort.InferenceSession:
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def logits(model, x: np.ndarray) -> np.ndarray:
    return session(model).run(None, {"input": x})[0]


def shapes_of(model: onnx.ModelProto) -> dict[str, list]:
    return {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.value_info}


@pytest.mark.parametrize("spec", SPEC_SAMPLE, ids=lambda p: p.stem)
def test_every_spec_passes_the_checker_and_shape_inference(spec):
    model = resdsl.compile(spec).to_onnx()
    onnx.checker.check_model(model, full_check=True)
    # Strict inference from the inputs alone must reach the shapes resdsl wrote.
    bare = onnx.ModelProto()
    bare.CopyFrom(model)
    del bare.graph.value_info[:]
    inferred = onnx.shape_inference.infer_shapes(bare, check_type=True, strict_mode=True)
    assert shapes_of(inferred) == shapes_of(model)


SHORTCUTS = [
    {"shortcut": "A"},
    {"shortcut": "B"},
    {"shortcut": "C"},
    {"shortcut": "none"},
    {"shortcut": "B", "projection": "avgpool"},
    {"shortcut": "C", "projection": "avgpool"},
]


@pytest.mark.parametrize("norm", ["post", "pre", "relu_preact", "bn_after_add", "relu_before_add"])
@pytest.mark.parametrize("shortcut", SHORTCUTS, ids=lambda d: "-".join(d.values()))
def test_every_op_matches_the_generated_torch_module(norm, shortcut):
    net = resdsl.compile(EVERY_OP, {"norm": norm, **shortcut})
    module = net.to_torch().eval()
    rng = np.random.default_rng(7)
    state = {}
    for key, (shape, dtype) in layout(net.ir).items():
        value = rng.standard_normal(shape) * 0.3 if dtype == "float32" else np.zeros(shape)
        state[key] = np.abs(value) + 0.5 if key.endswith("running_var") else value
    dtypes = {k: dtype for k, (_, dtype) in layout(net.ir).items()}
    module.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=dtypes[k])) for k, v in state.items()})
    x = rng.standard_normal((2, 3, 42, 42)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    for fold in (False, True):
        model = net.to_onnx(state, fold_bn=fold)
        onnx.checker.check_model(model, full_check=True)
        np.testing.assert_allclose(logits(model, x), expected, atol=2e-5, rtol=0)


def test_batchnorm_is_folded_by_default_and_kept_on_request():
    """Inference graphs by default: ResNet-50 has the 122 nodes of torch.onnx.export's graphs."""
    net = resdsl.compile(ROOT / "specs" / "resnet50.res", {"input": "3x64x64"})
    folded, kept = net.to_onnx(), net.to_onnx(fold_bn=False)
    counts = [collections.Counter(n.op_type for n in m.graph.node) for m in (folded, kept)]
    assert counts[0] == {
        "Conv": 53,
        "Relu": 49,
        "Add": 16,
        "MaxPool": 1,
        "GlobalAveragePool": 1,
        "Flatten": 1,
        "Gemm": 1,
    }
    assert counts[1] == counts[0] + collections.Counter(BatchNormalization=53)
    assert len(folded.graph.node) == 122 and len(kept.graph.node) == 175
    assert "conv1.bias" in {i.name for i in folded.graph.initializer}
    assert not any(i.name.startswith("bn1.") for i in folded.graph.initializer)
    props = [{p.key: p.value for p in m.metadata_props}["fold_bn"] for m in (folded, kept)]
    assert props == ["true", "false"]
    # Pre-activation normalises adds and the stem's output: those BatchNorms stay.
    pre = resdsl.compile(ROOT / "specs" / "resnet18.res", {"norm": "pre", "input": "3x64x64"}).to_onnx()
    assert sum(n.op_type == "BatchNormalization" for n in pre.graph.node) == 9


def test_the_cli_folds_by_default_and_keeps_batchnorm_with_keep_bn(tmp_path):
    spec = str(ROOT / "specs" / "cifar_resnet20.res")
    counts = {}
    for flags in ([], ["--fold-bn"], ["--keep-bn"]):
        out = tmp_path / f"m{len(counts)}.onnx"
        assert main(["build", spec, "--emit", "onnx", "-o", str(out), *flags]) == 0
        counts[" ".join(flags)] = sum(n.op_type == "BatchNormalization" for n in onnx.load(out).graph.node)
    assert counts == {"": 0, "--fold-bn": 0, "--keep-bn": 19}


def _save(state: dict[str, np.ndarray], path: Path) -> Path:
    if path.suffix == ".pt":
        torch.save({k: torch.from_numpy(v) for k, v in state.items()}, path)
    elif path.suffix == ".npz":
        np.savez(path, **state)
    else:
        from safetensors.numpy import save_file

        save_file(state, str(path))
    return path


def _check_logits(sess: ort.InferenceSession, name: str) -> None:
    """Batch 1 and batch 3 (rows of the reference batch) on one model."""
    x, reference = recipe_input(), np.load(REFERENCE / f"{name}.out.npy")
    one = sess.run(None, {"input": x[1:]})[0]
    three = sess.run(None, {"input": x[[0, 1, 0]]})[0]
    np.testing.assert_allclose(one, reference[1:], atol=1e-4, rtol=0)
    np.testing.assert_allclose(three, reference[[0, 1, 0]], atol=1e-4, rtol=0)


def test_cli_with_the_generated_modules_state_dict_gives_torchvision_logits(tmp_path):
    """The documented route: torch.save(model.state_dict()) of the generated module, then --weights."""
    from recipe import fill_module

    spec = ROOT / "specs" / "resnet18.res"
    module = resdsl.compile(spec).to_torch()
    fill_module(module)
    weights = tmp_path / "w.pt"
    torch.save(module.state_dict(), weights)
    for fold in ([], ["--keep-bn"]):
        out = tmp_path / "resnet18.onnx"
        assert main(["build", str(spec), "--emit", "onnx", "--weights", str(weights), "-o", str(out), *fold]) == 0
        _check_logits(session(out), "resnet18")


# A weights format per spec, so that every reader is exercised on real networks.
FORMATS = {
    "resnet18": ".npz",
    "resnet34": ".safetensors",
    "resnet50": ".npz",
    "resnet101": ".pt",
    "resnet152": ".npz",
    "resnext50_32x4d": ".safetensors",
    "wide_resnet50_2": ".pt",
}


@pytest.mark.parametrize("name", IMAGENET)
def test_recipe_weights_give_torchvision_logits(name, tmp_path):
    """The recipe over the layout's keys (test_initializers_are_the_state_dict checks them), read from a file."""
    net = resdsl.compile(ROOT / "specs" / f"{name}.res")
    weights = _save(recipe_state(layout(net.ir)), tmp_path / f"w{FORMATS[name]}")
    for fold in (False, True):
        _check_logits(session(net.to_onnx(weights, fold_bn=fold)), name)


@pytest.mark.parametrize("name", IMAGENET)
def test_initializers_are_the_state_dict(name):
    """Initializer names and shapes are torchvision's state_dict (num_batches_tracked left out)."""
    rows = (REFERENCE / f"{name}.keys.tsv").read_text().splitlines()[1:]
    reference = {
        key: () if shape == "scalar" else tuple(map(int, shape.split("x")))
        for key, shape, _ in (row.split("\t") for row in rows)
    }
    ir = resdsl.compile(ROOT / "specs" / f"{name}.res").ir
    assert {k: s for k, (s, _) in layout(ir).items()} == reference
    model = onnx_graph.emit(ir, initial(ir))
    names = {i.name: tuple(i.dims) for i in model.graph.initializer}
    assert names == {k: s for k, s in reference.items() if not k.endswith("num_batches_tracked")}


def test_names_shapes_and_metadata():
    net = resdsl.compile(ROOT / "specs" / "resnet18.res")
    model = net.to_onnx(seed=3, fold_bn=False)
    graph = model.graph
    nodes = [n.name for n in graph.node]
    assert nodes[:5] == ["conv1", "bn1", "act1", "maxpool", "layer1.0.conv1"]
    assert {"layer2.0.downsample.0", "layer2.0.downsample.1", "layer1.0.add", "layer1.0.act2", "fc"} <= set(nodes)
    assert len(nodes) == len(set(nodes))
    assert [i.name for i in graph.input] == ["input"] and [o.name for o in graph.output] == ["output"]
    assert shapes_of(onnx.ModelProto(graph=onnx.GraphProto(value_info=graph.input)))["input"] == ["batch", 3, 224, 224]
    assert shapes_of(onnx.ModelProto(graph=onnx.GraphProto(value_info=graph.output)))["output"] == ["batch", 1000]
    # Every tensor a node writes, except the graph output, has a declared shape.
    written = {t for n in graph.node for t in n.output} - {"output"}
    shapes = shapes_of(model)
    assert set(shapes) == written
    assert shapes["layer3.0.downsample.1"] == ["batch", 256, 14, 14] and shapes["flatten"] == ["batch", 512]
    assert (model.producer_name, model.producer_version) == ("resdsl", resdsl.__version__)
    assert model.opset_import[0].version == 17 and graph.name == "resnet18"
    props = {p.key: p.value for p in model.metadata_props}
    assert props == {"network": "resnet18", "source": "resnet18.res", "weights": "seed 3", "fold_bn": "false"}


@pytest.mark.parametrize("opset", onnx_graph.OPSETS)
def test_every_supported_opset_runs_the_same(opset):
    net = resdsl.compile(EVERY_OP)
    x = np.random.default_rng(1).standard_normal((3, 3, 42, 42)).astype(np.float32)
    model = net.to_onnx(opset=opset)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == opset
    np.testing.assert_allclose(logits(model, x), logits(net.to_onnx(), x), atol=1e-6, rtol=0)


def test_builds_are_byte_identical(tmp_path):
    spec = str(ROOT / "specs" / "resnet18.res")
    outs = [tmp_path / f"{n}.onnx" for n in ("a", "b", "c")]
    for out, seed in zip(outs, ("0", "0", "1"), strict=True):
        assert main(["build", spec, "--emit", "onnx", "--seed", seed, "-o", str(out)]) == 0
    a, b, c = (p.read_bytes() for p in outs)
    assert a == b and a != c


def test_default_initialisation_follows_pytorch_rules():
    net = resdsl.compile(ROOT / "specs" / "resnet18.res")
    state = initial(net.ir, seed=5)
    conv = state["layer1.0.conv1.weight"]
    bound = 1 / np.sqrt(64 * 3 * 3)
    assert conv.dtype == np.float32 and np.abs(conv).max() <= bound and np.abs(conv).max() > 0.99 * bound
    assert abs(conv.mean()) < 0.01 * bound
    assert np.abs(state["fc.bias"]).max() <= 1 / np.sqrt(512)
    assert (state["bn1.weight"] == 1).all() and (state["bn1.bias"] == 0).all()
    assert (state["bn1.running_mean"] == 0).all() and (state["bn1.running_var"] == 1).all()
    assert not np.array_equal(initial(net.ir, seed=6)["fc.weight"], state["fc.weight"])


def test_streamed_weights_equal_the_drawn_ones():
    """stream reuses its buffers, so each array is copied as it comes; the copies are initial's state."""
    graph = resdsl.compile(ROOT / "specs" / "seresnet50.res", {"input": "3x64x64"}).ir
    starts = weights.recipe(graph)
    keys = [k for k in reversed(starts) if not k.endswith("num_batches_tracked")]  # any order
    streamed = {k: a.copy() for k, a in zip(keys, weights.stream(starts, keys, seed=7), strict=True)}
    expected = initial(graph, seed=7)
    assert all(np.array_equal(streamed[k], expected[k]) for k in keys)
    assert len({streamed[k].tobytes() for k in keys if k.endswith("conv2.weight")}) > 1


def test_a_keys_initial_values_do_not_depend_on_the_rest_of_the_network():
    """Each key draws from its own stream: ResNet-18 and -34 start their shared stem alike."""
    small, large = (initial(resdsl.compile(ROOT / "specs" / f"{n}.res").ir) for n in ("resnet18", "resnet34"))
    for key in ("conv1.weight", "layer1.0.conv1.weight", "layer4.0.downsample.0.weight"):
        np.testing.assert_array_equal(small[key], large[key], err_msg=key)
    assert not np.array_equal(small["layer1.0.conv1.weight"], small["layer1.0.conv2.weight"])


@pytest.mark.parametrize("fold", [False, True])
def test_saved_files_parse_to_the_api_model(fold, tmp_path):
    """save_onnx writes the weights by hand; reading the file back gives to_onnx's message exactly."""
    net = resdsl.compile(EVERY_OP)
    net.save_onnx(tmp_path / "m.onnx", seed=4, opset=18, fold_bn=fold)
    assert onnx.load(tmp_path / "m.onnx") == net.to_onnx(seed=4, opset=18, fold_bn=fold)


def test_default_initialisation_matches_the_torch_modules_deterministic_entries():
    """BatchNorm entries (γ = 0 under zero_init_last included) equal the generated module's own."""
    net = resdsl.compile(ROOT / "specs" / "resnet18.res", {"zero_init_last": "true", "input": "3x32x32"})
    ours = initial(net.ir)
    theirs = net.to_torch().state_dict()
    assert list(ours) == list(theirs)
    batchnorms = [k for k in theirs if ".bn" in k or "downsample.1" in k]
    for key in batchnorms:
        np.testing.assert_array_equal(ours[key], theirs[key].numpy(), err_msg=key)
    assert not ours["layer1.0.bn2.weight"].any() and ours["layer1.0.bn1.weight"].all()
