"""The Python API explains itself: full error reports, Python-valued settings, named arguments, types, hints."""

from __future__ import annotations

import inspect
import subprocess
import sys
import warnings
from importlib import resources

import pytest
import torch
from conftest import ROOT, SPECS

import resdsl
from resdsl.api import Compiled
from resdsl.diagnostics import ResdslWarning

TWO_MISTAKES = "network n {\n  input 3x32x32\n  conv1 = cnov(8, k=3)\n  conv2 = conv(8, kernal=3)\n}\n"


def test_str_of_an_uncaught_error_is_the_full_report():
    with pytest.raises(resdsl.ResdslError) as info:
        resdsl.compile(TWO_MISTAKES)
    text = str(info.value)
    assert text == info.value.render()
    assert text.count("error[") == 2
    assert "--> <text>:3:11" in text and "= help: did you mean `conv`?" in text
    assert "--> <text>:4:19" in text
    # As Python prints it when nobody catches it:
    run = subprocess.run(
        [sys.executable, "-c", f"import resdsl; resdsl.compile({TWO_MISTAKES!r})"], capture_output=True, text=True
    )
    assert "resdsl.diagnostics.ResdslError: error[E0101]: unknown op or block `cnov`" in run.stderr
    assert "error[E0102]" in run.stderr and "= help:" in run.stderr


def test_unknown_model_name_says_what_was_meant():
    with pytest.raises(resdsl.ResdslError) as info:
        resdsl.create_model("resnet51")
    assert "did you mean `resnet50`?" in str(info.value)


def test_create_model_takes_python_values():
    model = resdsl.create_model("resnet18", zero_init_last=True, input=(3, 64, 64), num_classes=10)
    assert model.layer1[0].bn2.weight.abs().sum().item() == 0  # the last BN of each branch starts at zero
    assert model.conv1.weight.abs().sum().item() > 0
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 10)
    plain = resdsl.create_model("resnet18", zero_init_last=False)
    assert plain.layer1[0].bn2.weight.abs().sum().item() > 0
    # A network `let` takes a Python number.
    assert len(resdsl.create_model("preact_resnet164", n=1, num_classes=10).layer1) == 1


def test_unknown_keyword_arguments_are_named_as_python_arguments():
    with pytest.raises(TypeError) as info:
        resdsl.create_model("resnet18", drop_rate=0.1)
    message = str(info.value)
    assert message.startswith("create_model() got an unexpected keyword argument 'drop_rate'")
    assert "--set" not in message and "num_classes, in_chans" in message and "zero_init_last" in message
    with pytest.raises(TypeError, match="did you mean 'num_classes'"):
        resdsl.create_model("resnet18", num_class=10)


def test_pretrained_says_how_to_load_local_weights(tmp_path):
    with pytest.raises(ValueError) as info:
        resdsl.create_model("resnet18", pretrained=True)
    assert "resdsl ships no weights" in str(info.value) and "checkpoint_path=" in str(info.value)
    # pretrained=False, as timm callers write it, is accepted; the advice works as written.
    model = resdsl.create_model("resnet18", pretrained=False)
    torch.save(model.state_dict(), tmp_path / "weights.pth")
    again = resdsl.create_model("resnet18", checkpoint_path=tmp_path / "weights.pth")
    assert torch.equal(again.conv1.weight, model.conv1.weight)


def test_warnings_reach_python_and_the_compiled_result():
    spec = (
        'use "std/blocks.res"\nnetwork deep {\n  input 3x32x32\n  policy norm = pre\n'
        "  conv1_1 = conv(16, k=3)\n  conv1_2 = conv(16, k=3)\n  layer1 = basic(16) x 1\n}\n"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = resdsl.compile(spec)
    assert [w.category for w in caught] == [ResdslWarning]
    assert str(caught[0].message).startswith("warning[W0001]: `conv1_1` and `conv1_2` are convolutions in a row")
    assert [d.code for d in compiled.warnings] == ["W0001"]


PUBLIC = [
    resdsl.compile,
    resdsl.load,
    resdsl.create_model,
    resdsl.list_models,
    *(
        member
        for name, member in inspect.getmembers(Compiled)
        if not name.startswith("_") and (inspect.isfunction(member) or isinstance(member, property))
    ),
]


@pytest.mark.parametrize("function", PUBLIC, ids=lambda f: getattr(f, "__qualname__", None) or f.fget.__qualname__)
def test_public_functions_have_return_types_and_docstrings(function):
    target = function.fget if isinstance(function, property) else function
    assert inspect.getdoc(target), "no docstring"
    assert "return" in target.__annotations__, "no return type"


def test_package_is_typed():
    assert resources.files("resdsl").joinpath("py.typed").is_file()
    assert set(resdsl.__all__) >= {"compile", "create_model", "ResdslError", "MissingDependency", "__version__"}


def test_missing_optional_packages_raise_import_errors_with_the_install_hint():
    """Each feature names the extra that brings what it lacks; simulated by hiding the package."""
    program = f"""
import sys
hidden = sys.argv[1]
sys.modules[hidden] = None
import resdsl
net = resdsl.compile({str(SPECS / "cifar_resnet20.res")!r})
calls = {{"torch": lambda: resdsl.create_model("resnet18"), "onnx": net.to_onnx, "numpy": net.to_onnx}}
try:
    calls[hidden]()
except ImportError as exc:
    print(type(exc).__name__, isinstance(exc, resdsl.MissingDependency), exc.name, "|", exc)
"""
    for hidden, extra in (("torch", "torch"), ("onnx", "onnx"), ("numpy", "onnx")):
        run = subprocess.run(
            [sys.executable, "-c", program, hidden], capture_output=True, text=True, cwd=ROOT, timeout=120
        )
        assert run.returncode == 0, run.stderr
        kind, is_missing, name, _, message = run.stdout.strip().split(" ", 4)
        assert (kind, is_missing, name) == ("MissingDependency", "True", hidden)
        assert f"Python package {hidden}" in message and f"pip install 'resdsl[{extra}]'" in message


def test_compile_pauses_the_cyclic_collector_and_restores_it(monkeypatch):
    """The collector is off while a spec compiles and its source is generated, on again after, also after an error."""
    import gc

    from resdsl.frontend import lower as lowering

    seen = []
    real = lowering.lower

    def spy(*args, **kwargs):
        seen.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(resdsl.api, "lower", spy)
    assert gc.isenabled()
    assert "class" in resdsl.compile(SPECS / "resnet18.res").torch_source
    with pytest.raises(resdsl.ResdslError):
        resdsl.compile("network n {\n  input 3x8x8\n  conv(0)\n}\n")
    assert seen == [False, False] and gc.isenabled()
    gc.disable()  # a caller that turned it off keeps it off
    try:
        resdsl.compile(SPECS / "resnet18.res")
        assert not gc.isenabled()
    finally:
        gc.enable()
