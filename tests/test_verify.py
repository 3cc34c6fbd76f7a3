"""The verifier: each invariant of ir/verify.py, broken on purpose in a hand-built IR."""

from __future__ import annotations

import pytest
from irbuild import tiny

from resdsl.ir.graph import VerifyError
from resdsl.ir.node import Residual
from resdsl.ir.tree import Module, ModuleKind
from resdsl.ir.verify import verify
from resdsl.ops.conv import Conv
from resdsl.ops.dropout import Dropout
from resdsl.ops.input import Input
from resdsl.ops.relu import ReLU
from resdsl.passes import shapes


def shaped(**options):
    built = tiny(**options)
    shapes.apply(built.ir)
    verify(built.ir, after="building")  # the starting point is valid
    return built


def broken(built, match: str) -> None:
    with pytest.raises(VerifyError, match=match):
        verify(built.ir, after="test")


def test_a_cycle():
    t = shaped()
    t.ir.connect(t.fc, t.conv, pos=1)
    broken(t, "after test: the graph has a cycle")


def test_two_inputs():
    t = shaped()
    other = t.ir.add(Input(), [], parent=t.ir.root, span=None)
    t.ir.connect(other, t.fc, pos=1)
    broken(t, "expected one input")


def test_two_outputs():
    t = shaped()
    t.ir.add(ReLU(), [t.conv], parent=t.block, span=None)
    broken(t, "expected one output")


def test_operands_must_match_the_ops_arity():
    t = shaped()
    t.ir.disconnect(t.input, t.add)
    broken(t, r"operand positions \[0\]; add takes 2")


def test_operand_positions_are_zero_to_n():
    t = shaped()
    t.ir.graph.edges[t.input, t.add]["pos"] = 2
    broken(t, r"operand positions \[0, 2\]")


def test_attributes_of_the_wrong_type():
    t = shaped()
    t.conv.op = Conv(4.5, 3, 1, 1)  # type: ignore[arg-type]
    broken(t, r"out_channels=4.5 is not int")


def test_attributes_out_of_range():
    t = shaped()
    t.ir.insert_after(t.fc, Dropout(1.5), parent=t.ir.root, span=None)
    broken(t, r"p=1.5 is not in \[0, 1\)")


def test_a_shape_that_disagrees_with_the_shape_rule():
    t = shaped()
    t.conv.shape = (4, 4, 4)
    broken(t, r"has shape \(4, 4, 4\); its shape rule gives \(4, 8, 8\)")


def test_a_shape_whose_operand_has_none():
    t = shaped()
    t.conv.shape = None
    broken(t, "has a shape but an operand has none")


def test_a_module_needs_a_path_under_its_parent():
    t = shaped()
    t.conv.path = "elsewhere.conv1"
    broken(t, "expected a path under 'b.'")


def test_paths_are_unique():
    t = shaped()
    t.fc.path = "b.conv1"
    broken(t, "which another module has")


def test_functional_ops_have_no_path():
    t = shaped()
    dropout = t.ir.insert_after(t.conv, Dropout(0.5), parent=t.block, span=None, path="b.dropout")
    dropout.shape = t.conv.shape
    broken(t, "is functional but has module path 'b.dropout'")


def test_every_node_lives_in_the_tree():
    t = shaped()
    t.conv.parent = Module("stray", ModuleKind.BLOCK)
    broken(t, "which is not in the module tree")


def test_stages_hold_numbered_blocks():
    t = shaped()
    stage = Module("s", ModuleKind.STAGE, t.ir.root)
    Module("first", ModuleKind.BLOCK, stage, template=t.block.template)
    broken(t, r"stage s holds \['first'\]")


def test_blocks_are_instances_of_known_templates():
    t = shaped()
    t.block.template.instances.clear()
    broken(t, "block b is not an instance of a known template")


def test_sequences_number_their_ops():
    t = shaped()
    sequence = Module("downsample", ModuleKind.SEQUENCE, t.block)
    t.conv.parent, t.conv.path = sequence, "b.downsample.first"
    broken(t, "in a sequence is not numbered")


def test_references_point_into_the_graph():
    t = shaped()
    t.conv.branch = t.ir.add(ReLU(), [], parent=t.block, span=None)
    t.ir.remove(t.conv.branch)
    broken(t, "which is not in the graph")


def test_only_adds_carry_residual_information():
    t = shaped()
    t.fc.residual = Residual(0)
    broken(t, "only residual adds carry residual information")
