"""The `.pt` reader: real files from torch.save read exactly, without torch; hostile and foreign files refused.

torch writes the files here; resdsl.torchfile must read them back to the bit
(torch.load is the reference), refuse what is not a state_dict's contents,
and never run anything a pickle names.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import resdsl
from resdsl import torchfile
from resdsl.cli import main
from resdsl.torchfile import Tensor, TorchFileError
from resdsl.weights import initial

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "tests" / "data" / "every_op.res"


def _arrays(obj):
    """torchfile's object with every Tensor read, for comparing with torch.load's."""
    if isinstance(obj, Tensor):
        return obj.read()
    if isinstance(obj, dict):
        return {k: _arrays(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_arrays(v) for v in obj)
    return obj


def _same(ours, theirs) -> None:
    if isinstance(theirs, torch.Tensor):
        expected = (theirs.float() if theirs.dtype == torch.bfloat16 else theirs).detach()
        assert isinstance(ours, np.ndarray) and ours.flags.c_contiguous
        assert ours.dtype == expected.numpy().dtype and ours.shape == tuple(expected.shape)
        np.testing.assert_array_equal(ours, expected.numpy())
    elif isinstance(theirs, dict):
        assert list(ours) == list(theirs)
        for key in theirs:
            _same(ours[key], theirs[key])
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            _same(a, b)
    else:
        assert ours == theirs


def _roundtrip(obj, path: Path, **save_options) -> None:
    torch.save(obj, path, **save_options)
    # torch's own weights_only reader refuses protocol 4's FRAME; the files here are ours to trust.
    _same(_arrays(torchfile.load(path)), torch.load(path, weights_only=not save_options))


def test_a_generated_modules_state_dict_reads_as_torch_reads_it(tmp_path):
    module = resdsl.compile(SPEC).to_torch()
    for p in module.parameters():
        nn.init.normal_(p)
    _roundtrip(module.state_dict(), tmp_path / "w.pt")
    _roundtrip(module.state_dict(keep_vars=True), tmp_path / "params.pt")  # nn.Parameter values
    _roundtrip(module.state_dict(), tmp_path / "p4.pth", pickle_protocol=4)  # FRAME, MEMOIZE, ...
    _roundtrip(module.state_dict(), tmp_path / "p5.pth", pickle_protocol=5)
    saved = torchfile.load(tmp_path / "w.pt")
    assert isinstance(saved["conv1.weight"], Tensor) and saved["bn1.num_batches_tracked"].dtype == "int64"


def test_every_dtype_a_state_dict_needs_views_and_containers(tmp_path):
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(6, 8, generator=generator)
    obj = {
        "float32": base,
        "float64": base.double(),
        "float16": base.half(),
        "bfloat16": base.bfloat16(),  # read as float32, exactly
        "int64": torch.arange(5),
        "int32": torch.arange(5, dtype=torch.int32),
        "int16": torch.arange(5, dtype=torch.int16),
        "int8": torch.arange(-2, 3, dtype=torch.int8),
        "uint8": torch.arange(5, dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 4),
        "transposed": base.t(),  # a strided view of a shared storage
        "column": base[:, 3],  # an offset into the same storage
        "expanded": torch.ones(3, 1).expand(3, 4),  # stride 0
        "nested": {"list": [base[0], base[1]], "tuple": (base[2],), "number": 7, "text": "x", "none": None},
        "parameter": nn.Parameter(base.clone()),
    }
    _roundtrip(obj, tmp_path / "dtypes.pt")


def _rewritten(path: Path, out: Path, change) -> Path:
    """A copy of a torch.save archive with `change(name, data) -> data | None` applied to each member."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            data = change(info.filename, source.read(info))
            target.writestr(info, data if data is not None else source.read(info))
    return out


def test_big_endian_and_compressed_archives(tmp_path):
    value = torch.randn(4, 5, generator=torch.Generator().manual_seed(1))
    path = tmp_path / "w.pt"
    torch.save({"w": value, "n": torch.arange(3)}, path)
    dtypes = {"0": ">f4", "1": ">i8"}

    def big_endian(name: str, data: bytes) -> bytes | None:
        if name.endswith("/byteorder"):
            return b"big"
        key = name.rsplit("/", 1)[-1]
        if "/data/" in name:
            return np.frombuffer(data, "<" + dtypes[key][1:]).astype(dtypes[key]).tobytes()
        return None

    swapped = torchfile.load(_rewritten(path, tmp_path / "big.pt", big_endian))
    np.testing.assert_array_equal(swapped["w"].read(), value.numpy())
    np.testing.assert_array_equal(swapped["n"].read(), [0, 1, 2])
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(tmp_path / "deflated.pt", "w", zipfile.ZIP_DEFLATED) as out:
        for info in source.infolist():
            out.writestr(info.filename, source.read(info), compress_type=zipfile.ZIP_DEFLATED)
    np.testing.assert_array_equal(torchfile.load(tmp_path / "deflated.pt")["w"].read(), value.numpy())


def _hostile_archive(path: Path, payload: bytes) -> Path:
    """A zip laid out as torch.save lays it out, with `payload` as its pickle."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("w/data.pkl", payload)
        archive.writestr("w/byteorder", "little")
        archive.writestr("w/version", "3\n")
    return path


class _System:
    """Pickles to os.system(command): what a hostile checkpoint does."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class _Open:
    """Pickles to open(path, 'w'): creates a file when unpickled."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


def _payloads(marker: Path) -> dict[str, bytes]:
    system = pickle.dumps({"conv1.weight": _System(f"touch {marker}")}, protocol=2)
    opener = pickle.dumps(_Open(str(marker)), protocol=4)  # STACK_GLOBAL
    # A GLOBAL hidden inside what looks like a tensor rebuild, and the old INST opcode.
    inside = (
        b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n(cos\nsystem\n(X"
        + len(f"touch {marker}").to_bytes(4, "little")
        + f"touch {marker}".encode()
        + b"tRK\x00)))tR."
    )
    inst = f"(S'touch {marker}'\nios\nsystem\n.".encode()
    return {"os.system": system, "builtins.open": opener, "nested": inside, "INST": inst}


@pytest.mark.parametrize("kind", ["os.system", "builtins.open", "nested", "INST"])
def test_a_hostile_pickle_never_runs(tmp_path, kind):
    marker = tmp_path / "marker"
    payload = _payloads(marker)[kind]
    if kind == "builtins.open":  # the payload is live: plain unpickling runs it
        pickle.loads(payload)
        assert marker.exists()
        marker.unlink()
    path = _hostile_archive(tmp_path / "w.pt", payload)
    with pytest.raises(TorchFileError, match="not part of a state_dict|opcode"):
        torchfile.load(path)
    assert main(["build", str(SPEC), "--emit", "onnx", "--weights", str(path), "-o", str(tmp_path / "m.onnx")]) == 1
    assert not marker.exists()
    assert not (tmp_path / "m.onnx").exists()


def test_a_pickled_module_is_refused_without_importing_it(tmp_path, capsys):
    path = tmp_path / "model.pt"
    torch.save(nn.Sequential(nn.Linear(2, 2)), path)
    with pytest.raises(TorchFileError, match=r"torch\.nn\.modules\.container\.Sequential, which is not part"):
        torchfile.load(path)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: torch.save({"w": torch.ones(2)}, p, _use_new_zipfile_serialization=False), "legacy format"),
        (lambda p: torch.jit.save(torch.jit.script(nn.Linear(2, 2)), p), "TorchScript archive"),
        (lambda p: p.write_bytes(b"not a pickle"), "not a file written by torch.save"),
        (lambda p: torch.save({"w": torch.ones(2, dtype=torch.complex64)}, p), "unsupported dtype"),
        (lambda p: torch.save({"w": torch.zeros(2, dtype=torch.float8_e4m3fn)}, p), "a kind resdsl does not read"),
        (lambda p: zipfile.ZipFile(p, "w").close(), "not one written by torch.save"),
    ],
    ids=["legacy", "torchscript", "garbage", "complex", "float8", "empty-zip"],
)
def test_foreign_files_are_refused_plainly(tmp_path, make, message, capsys):
    path = tmp_path / "w.pt"
    make(path)
    with pytest.raises(TorchFileError, match=message):
        torchfile.load(path)
    assert main(["build", str(SPEC), "--emit", "onnx", "--weights", str(path), "-o", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert "error[E0401]" in err and message in err and "Traceback" not in err


@pytest.mark.parametrize(
    "payload",
    [
        b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01",  # ends early
        b"\x80\x02h\x05.",  # a memo entry never stored
        b"\x80\x02X\xff\xff\xff\x7fabc.",  # a string longer than the pickle
        b"\x80\x02]q\x00(K\x01K\x02K\x03u.",  # SETITEMS on a list
        b"\x80\x02(X\x07\x00\x00\x00storagectorch._utils\n_rebuild_parameter\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01tQ.",
    ],
    ids=["truncated", "memo", "long-string", "setitems-on-list", "not-a-storage-type"],
)
def test_malformed_pickles_are_refused(tmp_path, payload):
    with pytest.raises(TorchFileError):
        torchfile.load(_hostile_archive(tmp_path / "w.pt", payload))


def test_a_tensor_reaching_past_its_storage_is_refused(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"w": torch.ones(4)}, path)
    grown = _rewritten(
        path, tmp_path / "grown.pt", lambda name, data: data[: len(data) // 2] if "/data/" in name else None
    )
    with pytest.raises(TorchFileError, match="fewer bytes"):
        torchfile.load(grown)


def test_a_nested_checkpoint_names_the_key_that_holds_the_state_dict(tmp_path):
    net = resdsl.compile(SPEC)
    path = tmp_path / "checkpoint.pt"
    torch.save({"epoch": 3, "model": net.to_torch().state_dict()}, path)
    with pytest.raises(resdsl.ResdslError, match="does not hold a state_dict") as info:
        net.to_onnx(path)
    assert "under key 'model'" in info.value.render()


def _state_with(net, **changes):
    state = {k: torch.from_numpy(v.copy()) for k, v in initial(net.ir).items()}
    for key, change in changes.items():
        change(state[key])
    return state


@pytest.mark.parametrize("suffix", [".pt", ".npz"])
def test_nan_weights_and_negative_variances_are_refused(tmp_path, suffix, capsys):
    net = resdsl.compile(SPEC)
    state = _state_with(
        net,
        **{
            "conv1.weight": lambda t: t.view(-1)[:3].fill_(float("nan")),
            "conv1.bias": lambda t: t.view(-1)[:1].fill_(float("inf")),
            "bn1.running_var": lambda t: t.view(-1)[:2].fill_(-1.0),
        },
    )
    path = tmp_path / f"w{suffix}"
    if suffix == ".pt":
        torch.save(state, path)
    else:
        np.savez(path, **{k: v.numpy() for k, v in state.items()})
    out = tmp_path / "m.onnx"
    for flags in ([], ["--keep-bn"]):
        assert main(["build", str(SPEC), "--emit", "onnx", "--weights", str(path), "-o", str(out), *flags]) == 1
        err = capsys.readouterr().err
        assert "error[E0405]" in err and "Traceback" not in err and not out.exists()
        # A .pt file is checked as it streams, so its first bad tensor stops the build; an .npz is checked whole.
        assert "conv1.weight holds 3 NaN or infinite value(s)" in err
        if suffix == ".npz":
            assert "conv1.bias holds 1 NaN or infinite value(s)" in err and "bn1.running_var holds 2 negative" in err


def test_bfloat16_and_float16_checkpoints_build_the_same_model_as_float32(tmp_path):
    net = resdsl.compile(SPEC)
    state = {k: torch.from_numpy(v) for k, v in initial(net.ir, seed=2).items()}
    rounded = {k: v.bfloat16().float() if v.is_floating_point() else v for k, v in state.items()}
    torch.save({k: v.bfloat16() if v.is_floating_point() else v for k, v in state.items()}, tmp_path / "bf16.pt")
    assert net.to_onnx(tmp_path / "bf16.pt") == _relabelled(net.to_onnx(rounded), "bf16.pt")
    halves = {k: v.half().float() if v.is_floating_point() else v for k, v in state.items()}
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, tmp_path / "f16.pt")
    assert net.to_onnx(tmp_path / "f16.pt") == _relabelled(net.to_onnx(halves), "f16.pt")


def _relabelled(model, name: str):
    """A model built from a mapping, with the metadata a build from file NAME records."""
    for prop in model.metadata_props:
        if prop.key == "weights":
            prop.value = f"file {name}"
    return model


def _peak_kib(argv: list[str]) -> int:
    """VmHWM of a fresh process running the CLI (a child's rusage would carry over its parent's peak)."""
    code = (
        f"from resdsl.cli import main\nassert main({argv!r}) == 0\n"
        "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return int(result.stdout.split()[-1])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="VmHWM is Linux's")
def test_weights_stream_through_the_build_and_torch_is_never_imported(tmp_path):
    """ResNet-50's 98 MiB of weights, folded, take little more memory than a build without weights."""
    spec = str(ROOT / "specs" / "resnet50.res")
    weights = tmp_path / "w.pt"
    torch.save(resdsl.compile(spec).to_torch().state_dict(), weights)
    out = str(tmp_path / "m.onnx")
    bare = _peak_kib(["build", spec, "--emit", "onnx", "--keep-bn", "-o", out])
    loaded = _peak_kib(["build", spec, "--emit", "onnx", "--weights", str(weights), "-o", out])
    assert loaded - bare < 40 * 1024, (bare, loaded)  # everything at once would be 98 MiB more
    # With torch made unimportable, the build still succeeds.
    probe = (
        f"import sys\nsys.modules['torch'] = None\nfrom resdsl.cli import main\n"
        f"sys.exit(main(['build', {spec!r}, '--emit', 'onnx', '--weights', {str(weights)!r}, '-o', {out!r}]))"
    )
    Path(out).unlink()
    subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert Path(out).stat().st_size > 97 * 2**20


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="VmHWM is Linux's")
def test_resnet152_with_weights_peaks_below_300_mib_without_torch(tmp_path):
    """The issue's budget: `build --emit onnx --weights resnet152.pt` (230 MiB of weights) under 300 MiB, no torch."""
    spec = str(ROOT / "specs" / "resnet152.res")
    weights, out = tmp_path / "resnet152.pt", tmp_path / "m.onnx"
    torch.save({k: torch.from_numpy(v) for k, v in initial(resdsl.compile(spec).ir).items()}, weights)
    code = (
        "import sys\nfrom resdsl.cli import main\n"
        f"assert main(['build', {spec!r}, '--emit', 'onnx', '--weights', {str(weights)!r}, '-o', {str(out)!r}]) == 0\n"
        "print('torch' in sys.modules, 'onnx' in sys.modules)\n"
        "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    imported, peak_kib = result.stdout.splitlines()[-2:]
    assert imported == "False False"
    assert int(peak_kib) < 300 * 1024, f"peak {int(peak_kib) / 1024:.0f} MiB"
    assert out.stat().st_size > 229 * 2**20  # every weight written (BatchNorm folded into the convs)


def test_reading_is_lazy(tmp_path):
    """Loading reads the pickle only; a Tensor's bytes are read when asked for (here: after the file changed)."""
    path = tmp_path / "w.pt"
    torch.save({"w": torch.zeros(1000)}, path)
    saved = torchfile.load(path)
    data = bytearray(path.read_bytes())
    start = saved["w"].storage.start
    data[start : start + 4] = np.float32(2.5).tobytes()
    path.write_bytes(bytes(data))
    assert saved["w"].read()[0] == 2.5
