"""Op definitions: every kind is complete for every backend, and its state layout is the generated module's."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar

import pytest
import torch
from conftest import SPEC_SAMPLE

import resdsl
from resdsl.ops import KINDS, SPEC_OPS
from resdsl.ops.base import Op, Shape, ShapeReport, Signature
from resdsl.weights import layout


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_op_kind_is_handled_by_every_backend(kind):
    """Shape rule, MACs (summary), label (DOT, reports), PyTorch and ONNX: each kind defines them all."""
    assert KINDS[kind].missing_hooks() == []


def test_an_op_missing_a_backend_is_caught():
    @dataclasses.dataclass(frozen=True)
    class Mystery(Op):
        kind: ClassVar[str] = "mystery"
        signature: ClassVar[Signature | None] = Signature(())

        def infer(self, inputs: Sequence[Shape], report: ShapeReport) -> Shape | None:
            return inputs[0]

    assert Mystery.missing_hooks() == ["macs", "label", "torch_call", "onnx"]


def test_spec_ops_are_the_kinds_with_a_signature():
    assert set(SPEC_OPS) == {kind for kind, cls in KINDS.items() if cls.signature is not None}
    assert {"conv", "batchnorm", "relu", "maxpool", "linear", "se"} <= set(SPEC_OPS)
    assert not {"input", "add", "pad_shortcut"} & set(SPEC_OPS)  # the input statement, `add`, a policy


@pytest.mark.parametrize("spec", SPEC_SAMPLE, ids=lambda p: p.stem)
def test_state_layout_is_the_generated_modules_state_dict(spec):
    """One source of parameter counts: the ops' state layouts give the generated module's keys, shapes and count."""
    net = resdsl.compile(spec)
    with torch.device("meta"):
        model = net.to_torch()
    state = model.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: s for k, (s, _) in layout(net.ir).items()}
    assert list(state) == list(layout(net.ir))
    assert sum(p.numel() for p in model.parameters()) == net.params


def test_sigmoid_in_every_backend():
    """The op docs/internals.md adds as its example: a spec uses it, and every backend agrees."""
    from agreement import assert_backends_agree

    net = resdsl.compile("network n {\n  input 3x8x8\n  conv1 = conv(4, k=3)\n  sigmoid\n  gap\n  flatten\n}\n")
    assert [n.op.kind for n in net.ir.walk()][-3:] == ["sigmoid", "gap", "flatten"]
    assert "nn.Sigmoid()" in net.torch_source and "sigmoid" in net.to_dot(level="op")
    assert '"op": "sigmoid"' in net.summary("json")
    out = assert_backends_agree(net)
    assert ((out > 0) & (out < 1)).all()  # a sigmoid's output, averaged
