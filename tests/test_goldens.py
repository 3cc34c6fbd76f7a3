"""Golden files for what resdsl writes: generated PyTorch source, IR dumps and ONNX graphs.

Any change to an output shows up as a diff to review; `pytest --update-goldens`
rewrites the files deliberately. The specs cover each kind of shortcut
(projection, option A padding, ResNet-D's pooled projection, full
pre-activation's), squeeze-and-excitation and torchvision's bottleneck.
DOT goldens are in test_render.py, error goldens in test_errors.py.
"""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from conftest import ROOT
from onnx import helper, numpy_helper

import resdsl

# name -> (spec, overrides); preact_resnet20 is ResNet-164's spec with n = 2, to keep its dumps short.
SPECS = {
    "resnet18": ("resnet18", {}),
    "resnet50": ("resnet50", {}),
    "cifar_resnet20": ("cifar_resnet20", {}),
    "preact_resnet20": ("preact_resnet164", {"n": "2"}),
    "resnet50d": ("resnet50d", {}),
    "seresnet50": ("seresnet50", {}),
}
ONNX_SPECS = ("resnet18", "cifar_resnet20", "preact_resnet20", "resnet50d")


@pytest.fixture
def compiled():
    def get(name: str) -> resdsl.Compiled:
        spec, overrides = SPECS[name]
        return resdsl.compile(ROOT / "specs" / f"{spec}.res", overrides)

    return get


@pytest.mark.parametrize("name", SPECS)
def test_generated_torch_source(compiled, golden, name):
    golden(f"{name}.py", compiled(name).torch_source)


@pytest.mark.parametrize("name", SPECS)
def test_ir_dump(compiled, golden, name):
    # Without source locations, so that editing a spec's comments does not churn its golden; error goldens test spans.
    golden(f"{name}.ir", re.sub(r" @ \S+", "", compiled(name).ir_text))


@pytest.mark.parametrize("name", ONNX_SPECS)
def test_onnx_graph(compiled, golden, name):
    golden(f"{name}.onnx.txt", onnx_text(compiled(name).to_onnx()))  # BatchNorm folded, the default


def test_onnx_graph_with_batchnorm_kept(compiled, golden):
    golden("resnet18.keep-bn.onnx.txt", onnx_text(compiled("resnet18").to_onnx(fold_bn=False)))


def onnx_text(model: onnx.ModelProto) -> str:
    """The model without its weights' values, one line per item, independent of onnx's own printer."""
    graph = model.graph
    lines = [
        f"ir_version {model.ir_version}, opset {model.opset_import[0].version}, graph {graph.name}",
        *(f"metadata {p.key} = {p.value}" for p in model.metadata_props),
        *(f"input {v.name}: {_type(v)}" for v in graph.input),
        *(f"initializer {t.name}: {_dtype(t.data_type)}[{','.join(map(str, t.dims))}]" for t in graph.initializer),
    ]
    for node in graph.node:
        attrs = ", ".join(f"{a.name}={_attribute(a)}" for a in node.attribute)
        lines.append(
            f"node {node.name}: {node.op_type}({', '.join(node.input)}) -> {', '.join(node.output)}"
            + (f" {{{attrs}}}" if attrs else "")
        )
    lines += [f"value_info {v.name}: {_type(v)}" for v in graph.value_info]
    lines += [f"output {v.name}: {_type(v)}" for v in graph.output]
    return "\n".join(lines) + "\n"


def _dtype(code: int) -> str:
    return onnx.TensorProto.DataType.Name(code).lower()


def _type(value: onnx.ValueInfoProto) -> str:
    tensor = value.type.tensor_type
    dims = [d.dim_param or str(d.dim_value) for d in tensor.shape.dim]
    return f"{_dtype(tensor.elem_type)}[{','.join(dims)}]"


def _attribute(attribute: onnx.AttributeProto) -> str:
    value = helper.get_attribute_value(attribute)
    if isinstance(value, onnx.TensorProto):
        return f"{_dtype(value.data_type)}{numpy_helper.to_array(value).tolist()}"
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, float):
        return repr(float(np.float32(value)))
    return repr(value)
