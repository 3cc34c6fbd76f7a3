"""Weights files that do not fit, the ONNX options of `resdsl build`, `resdsl run`, and what gets imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import resdsl
from resdsl import runner
from resdsl.cli import main
from resdsl.weights import initial, state_source

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "tests" / "data" / "every_op.res"


@pytest.fixture
def state():
    return initial(resdsl.compile(SPEC).ir)


def test_weights_that_do_not_fit_name_every_bad_key(tmp_path, state, capsys):
    state = dict(state)
    del state["layer1.0.bn1.running_var"], state["fc.weight"]
    del state["bn1.num_batches_tracked"]  # optional: not reported
    state["layer9.conv.weight"] = np.zeros(3, np.float32)
    state["conv1.weight"] = np.zeros((8, 3, 5, 5), np.float32)
    path = tmp_path / "bad.npz"
    np.savez(path, **state)
    with pytest.raises(resdsl.ResdslError) as info:
        resdsl.compile(SPEC).to_onnx(path)
    codes = [d.code for d in info.value.diagnostics]
    assert sorted(codes) == ["E0402", "E0403", "E0404"]
    text = info.value.render()
    for fragment in (
        "lacks 2 key(s)",
        "layer1.0.bn1.running_var",
        "fc.weight",
        "layer9.conv.weight",
        "conv1.weight is 8x3x5x5, the network needs 8x3x3x3",
    ):
        assert fragment in text
    assert "num_batches_tracked" not in text
    assert main(["build", str(SPEC), "--emit", "onnx", "--weights", str(path), "-o", str(tmp_path / "m.onnx")]) == 1
    assert "error[E0402]" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


def test_non_float_weights_are_refused(state):
    state = dict(state, **{"fc.weight": np.zeros((7, 16), np.int32)})
    with pytest.raises(resdsl.ResdslError, match="fc.weight holds int32"):
        resdsl.compile(SPEC).to_onnx(state)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("w.bin", b"", "unknown format .bin"),
        ("w.pt", b"not a pickle", "could not be read"),
        ("w.npz", b"PK nonsense", "could not be read"),
        ("w.safetensors", b"\x00", "could not be read"),
    ],
)
def test_unreadable_weights_are_spec_errors(tmp_path, name, content, message, capsys):
    path = tmp_path / name
    path.write_bytes(content)
    assert main(["build", str(SPEC), "--emit", "onnx", "--weights", str(path), "-o", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert "error[E0401]" in err and message in err and "Traceback" not in err


def test_a_missing_weights_file_is_a_spec_error(tmp_path):
    with pytest.raises(resdsl.ResdslError, match="does not exist") as info:
        resdsl.compile(SPEC).to_onnx(tmp_path / "absent.pt")
    assert info.value.diagnostics[0].code == "E0401"


def test_a_pt_file_must_hold_a_state_dict(tmp_path):
    import torch

    path = tmp_path / "model.pt"
    torch.save({"epoch": 3, "state": {}}, path)
    with pytest.raises(resdsl.ResdslError, match="does not hold a state_dict"):
        resdsl.compile(SPEC).to_onnx(path)


@pytest.mark.parametrize(
    "argv",
    [
        ["--emit", "torch", "--fold-bn"],
        ["--emit", "torch", "--keep-bn"],
        ["--emit", "ir", "--opset", "17"],
        ["--emit", "onnx", "--weights", "w.npz", "--seed", "3"],
    ],
)
def test_onnx_options_are_usage_errors_elsewhere(argv, capsys):
    assert main(["build", str(SPEC), "-o", "-", *argv]) == 2
    assert "error:" in capsys.readouterr().err


def test_unsupported_opset_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["build", str(SPEC), "--emit", "onnx", "--opset", "9"])
    assert info.value.code == 2


def test_run_executes_a_built_model(tmp_path, capsys):
    model, x, out = tmp_path / "m.onnx", tmp_path / "x.npy", tmp_path / "y.npy"
    assert main(["build", str(SPEC), "--emit", "onnx", "-o", str(model)]) == 0
    batch = np.random.default_rng(0).standard_normal((2, 3, 42, 42)).astype(np.float32)
    np.save(x, batch)
    assert main(["run", str(model), "--input", str(x), "-o", str(out)]) == 0
    expected = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"input": batch})[0]
    np.testing.assert_array_equal(np.load(out), expected)
    stdout = capsys.readouterr().out.splitlines()
    assert stdout == [
        f"{row}: class {int(expected[row].argmax())} ({float(expected[row].max()):.6g})" for row in (0, 1)
    ]
    # One image without a batch axis runs as a batch of one.
    np.save(x, batch[0])
    assert main(["run", str(model), "--input", str(x), "-o", str(out)]) == 0
    np.testing.assert_allclose(np.load(out), expected[:1], atol=1e-6)


def test_run_refuses_a_wrong_input(tmp_path, capsys):
    model, x = tmp_path / "m.onnx", tmp_path / "x.npy"
    assert main(["build", str(SPEC), "--emit", "onnx", "-o", str(model)]) == 0
    np.save(x, np.zeros((1, 3, 40, 42), np.float32))
    assert main(["run", str(model), "--input", str(x)]) == 2
    assert "the input is 1x3x40x42; the model needs Nx3x42x42" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "missing.onnx"), "--input", str(x)]) == 2
    assert main(["run", str(model), "--input", str(tmp_path / "missing.npy")]) == 2


def test_run_prefers_cuda_when_installed(monkeypatch):
    assert runner.providers() == ["CPUExecutionProvider"] or "CUDAExecutionProvider" in ort.get_available_providers()
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert runner.providers() == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert runner.providers("cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert runner.providers("cpu") == ["CPUExecutionProvider"]


def test_run_device_option(tmp_path, capsys, monkeypatch):
    model, x = tmp_path / "m.onnx", tmp_path / "x.npy"
    assert main(["build", str(SPEC), "--emit", "onnx", "-o", str(model)]) == 0
    np.save(x, np.zeros((1, 3, 42, 42), np.float32))
    assert main(["run", str(model), "--input", str(x), "--device", "cpu"]) == 0
    assert "on CPUExecutionProvider" in capsys.readouterr().err
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert main(["run", str(model), "--input", str(x), "--device", "cuda"]) == 2
    assert "no CUDA provider" in capsys.readouterr().err


def _imports_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    return set(result.stdout.splitlines()[-1].split())


def test_onnx_emission_never_imports_torch(tmp_path):
    import torch

    state = initial(resdsl.compile(SPEC).ir)
    np.savez(tmp_path / "w.npz", **state)
    torch.save({k: torch.from_numpy(v) for k, v in state.items()}, tmp_path / "w.pt")
    build = (
        f"from resdsl.cli import main; "
        f"main(['build', {str(SPEC)!r}, '--emit', 'onnx', '-o', {str(tmp_path / 'm.onnx')!r}"
    )
    # Writing a file needs neither: the backend encodes the protobuf itself (importing onnx costs more than a build).
    assert _imports_after(build + "])") == set()
    for name in ("w.npz", "w.pt"):
        assert _imports_after(build + f", '--weights', {str(tmp_path / name)!r}])") == set()
    assert _imports_after(f"from resdsl.cli import main; main(['check', {str(SPEC)!r}])") == set()


def test_the_cli_offers_exactly_the_backends_opsets():
    from onnx import helper

    from resdsl import cli
    from resdsl.backends import onnx_graph

    assert cli.ONNX_OPSETS == onnx_graph.OPSETS
    for opset, ir_version in onnx_graph.IR_VERSIONS.items():
        assert helper.find_min_ir_version_for([helper.make_opsetid("", opset)]) == ir_version


def _without_data_location(model):
    """onnx.load marks the initializers it filled from external data as `data_location: DEFAULT` explicitly."""
    for tensor in model.graph.initializer:
        tensor.ClearField("data_location")
    return model


@pytest.mark.parametrize("fold", [False, True])
def test_external_data_holds_the_same_model(tmp_path, fold, capsys):
    import onnx

    out = tmp_path / "m.onnx"
    args = ["build", str(SPEC), "--emit", "onnx", "--seed", "3", "-o", str(out), "--external-data"]
    assert main(args + ([] if fold else ["--keep-bn"])) == 0
    assert f"weights in {out}.data" in capsys.readouterr().err
    bare = onnx.load(out, load_external_data=False)
    assert all(t.data_location == onnx.TensorProto.EXTERNAL and not t.raw_data for t in bare.graph.initializer)
    entries = [{e.key: e.value for e in t.external_data} for t in bare.graph.initializer]
    assert {e["location"] for e in entries} == {"m.onnx.data"}
    assert sum(int(e["length"]) for e in entries) == (tmp_path / "m.onnx.data").stat().st_size
    onnx.checker.check_model(str(out), full_check=True)
    net = resdsl.compile(SPEC)
    assert _without_data_location(onnx.load(out)) == net.to_onnx(seed=3, fold_bn=fold)
    x = np.random.default_rng(0).standard_normal((2, 3, 42, 42)).astype(np.float32)
    inline = ort.InferenceSession(
        net.to_onnx(seed=3, fold_bn=fold).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    external = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(external.run(None, {"input": x})[0], inline.run(None, {"input": x})[0])
    first = out.read_bytes(), (tmp_path / "m.onnx.data").read_bytes()
    assert main(args + ([] if fold else ["--keep-bn"])) == 0
    assert (out.read_bytes(), (tmp_path / "m.onnx.data").read_bytes()) == first


def test_weights_past_the_protobuf_limit_go_to_external_data(tmp_path, monkeypatch, state, capsys):
    """A model over protobuf's 2 GiB cannot be one file; the limit is lowered so a small net stands in for one."""
    from resdsl.backends import onnx_graph

    out = tmp_path / "big.onnx"
    assert main(["build", str(SPEC), "--emit", "onnx", "-o", str(out)]) == 0
    assert not (tmp_path / "big.onnx.data").exists()
    monkeypatch.setattr(onnx_graph, "PROTOBUF_LIMIT", out.stat().st_size // 2)
    assert main(["build", str(SPEC), "--emit", "onnx", "-o", str(out)]) == 0
    assert f"weights in {out}.data" in capsys.readouterr().err
    assert out.stat().st_size < (tmp_path / "big.onnx.data").stat().st_size
    with pytest.raises(onnx_graph.OnnxEmitError, match="need an external data file"):
        onnx_graph.serialize(resdsl.compile(SPEC).ir, *state_source(state))


def test_external_data_needs_an_output_file(capsys):
    assert main(["build", str(SPEC), "--emit", "onnx", "-o", "-", "--external-data"]) == 2
    assert "--external-data needs an output file" in capsys.readouterr().err


def test_a_model_past_2_gib_is_not_written_to_standard_output(monkeypatch, capsys):
    from resdsl.backends import onnx_graph

    monkeypatch.setattr(onnx_graph, "PROTOBUF_LIMIT", 1000)
    assert main(["build", str(SPEC), "--emit", "onnx", "-o", "-"]) == 2
    assert "past protobuf's 2 GiB: write it to a file" in capsys.readouterr().err
