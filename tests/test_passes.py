"""Each pass on its own, on IR built by hand (tests/irbuild.py): what it needs, what it guarantees."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ROOT
from irbuild import tiny

import resdsl
from resdsl.diagnostics import ResdslError
from resdsl.ir.graph import VerifyError
from resdsl.ir.node import Origin, ShortcutKind
from resdsl.ir.policies import Policies
from resdsl.ir.tree import Module, ModuleKind
from resdsl.ir.verify import verify
from resdsl.limits import Limits
from resdsl.ops.flatten import Flatten
from resdsl.ops.pool import MaxPool
from resdsl.passes import budget, fold_bn, norm, projections, shapes, templates, validate, zero_init
from resdsl.weights import initial, layout


def kinds(ir, block=None):
    return [n.op.kind for n in ir.walk() if block is None or n.block is block]


def run(ir, *steps):
    for step in steps:
        step.apply(ir, Limits())
        verify(ir, after=step.NAME)


def test_shapes_follow_each_ops_rule():
    t = tiny(out=6, stride=2)
    run(t.ir, shapes)
    assert t.conv.shape == (6, 4, 4) and t.add.shape == (6, 4, 4) and t.fc.shape == (3,)


def test_shapes_report_every_independent_mistake_once():
    t = tiny()
    t.ir.insert_after(t.conv, MaxPool(9, 1, 0), parent=t.block, span=None)  # 9×9 does not fit 8×8
    flat = next(n for n in t.ir if n.op.kind == "flatten")
    t.ir.insert_after(flat, MaxPool(2, 2, 0), parent=t.ir.root, span=None)  # a spatial op on a flat tensor
    with pytest.raises(ResdslError) as info:
        shapes.apply(t.ir)
    assert [d.code for d in info.value.diagnostics] == ["E0201"]  # what follows the failed pool is skipped


def test_norm_places_batchnorm_and_relu_by_the_order():
    t = tiny(policies=Policies(norm="post"))
    run(t.ir, norm)
    assert kinds(t.ir, t.block) == ["conv", "batchnorm", "add", "relu"]
    bn = t.ir.users(t.conv)[0]
    assert (bn.path, bn.origin, bn.parent, bn.branch) == ("b.bn1", Origin.NORM, t.block, t.add)

    pre = tiny(policies=Policies(norm="pre"))
    run(pre.ir, norm)
    assert kinds(pre.ir, pre.block) == ["batchnorm", "relu", "conv", "add"]
    assert [n.path for n in pre.ir.walk() if n.block is None and n.op.kind == "batchnorm"] == ["bn_final"]


def test_projections_insert_a_numbered_sequence_where_shapes_differ():
    t = tiny(out=8, stride=2, policies=Policies(norm="post"))
    run(t.ir, norm, shapes, projections)
    assert t.add.residual.kind is ShortcutKind.PROJECTION and t.add.residual.source is t.input
    conv, bn = t.ir.shortcut_chains()[t.add]
    assert (conv.path, bn.path) == ("b.downsample.0", "b.downsample.1")
    assert conv.parent.kind is ModuleKind.SEQUENCE and conv.parent.parent is t.block
    assert (conv.op.stride, conv.shape, conv.shortcut_of) == (2, (8, 4, 4), t.add)


def test_projections_under_option_a_pad_and_report_what_cannot_be_mapped():
    t = tiny(out=8, stride=2, policies=Policies(norm="none", shortcut="A"))
    run(t.ir, shapes, projections)
    (pad,) = t.ir.shortcut_chains()[t.add]
    assert (pad.op.stride, pad.op.pad_before, pad.op.pad_after, pad.path) == (2, 2, 2, None)

    fewer = tiny(out=2, policies=Policies(norm="none", shortcut="A"))
    run(fewer.ir, shapes)
    with pytest.raises(ResdslError) as info:
        projections.apply(fewer.ir, Limits())
    assert [d.code for d in info.value.diagnostics] == ["E0203"]


def test_projections_under_policy_none_remove_the_add_and_its_branch():
    t = tiny(policies=Policies(norm="none", shortcut="none"))
    run(t.ir, shapes, projections)
    assert "add" not in kinds(t.ir) and t.conv.branch is None


def test_zero_init_marks_the_last_batchnorm_of_each_branch():
    t = tiny(policies=Policies(norm="relu_before_add", zero_init_last=True))
    run(t.ir, norm, shapes, projections, zero_init)
    assert [n.path for n in t.ir if n.zero_init] == ["b.bn1"]


def test_budget_refuses_what_is_over_a_limit():
    t = tiny(out=64)
    run(t.ir, shapes)
    with pytest.raises(ResdslError, match="parameter count is 2,499, over the limit of 100"):
        budget.apply(t.ir, Limits(params=100))
    with pytest.raises(ResdslError, match="the channel count after `b.conv1` is 64"):
        budget.apply(t.ir, Limits(channels=32))


def test_templates_record_which_instances_have_a_shortcut():
    t = tiny(policies=Policies(norm="post"))
    second = Module("b2", ModuleKind.BLOCK, t.ir.root, template=t.block.template, args={"c": 8})
    t.block.template.instances.append(second)
    conv = t.ir.add(type(t.conv.op)(8, 3, 2, 1), [t.add], parent=second, span=None, path="b2.conv1")
    add = t.ir.add(type(t.add.op)(), [conv, t.add], parent=second, span=None, residual=type(t.add.residual)(0))
    conv.branch = add
    t.ir.replace_operand(next(n for n in t.ir if n.op.kind == "gap"), t.add, add)
    run(t.ir, norm, shapes, projections, templates)
    slot = t.block.template.shortcuts[0]
    assert (slot.optional, slot.stride) == (True, None)  # only b2 projects, by its branch's own stride


def test_templates_refuse_a_flatten_whose_size_differs_between_uses():
    """Two uses of one template flatten 4×8×8 and 4×4×4: its class cannot write one size."""
    t = tiny()
    template = t.block.template
    flat = t.ir.add(Flatten(), [t.input], parent=t.block, span=None)
    t.ir.remove(t.conv)
    t.ir.remove(t.add)
    second = Module("b2", ModuleKind.BLOCK, t.ir.root, template=template, args={"c": 4})
    template.instances.append(second)
    pooled = t.ir.add(MaxPool(2, 2, 0), [t.input], parent=t.ir.root, span=None)
    t.ir.add(Flatten(), [pooled], parent=second, span=None)
    shapes.apply(t.ir, only=[t.input, flat, pooled, *t.ir.users(pooled)])
    with pytest.raises(ResdslError) as info:
        templates.apply(t.ir, Limits())
    assert [d.code for d in info.value.diagnostics] == ["E0211"]
    assert "sees different spatial sizes (4×4, 8×8)" in info.value.diagnostics[0].message


def test_validate_is_a_resdsl_bug_not_a_spec_error():
    t = tiny(out=8)
    run(t.ir, shapes)  # no projections pass: the add's operands still differ
    with pytest.raises(VerifyError, match="has operands of shapes"):
        validate.apply(t.ir, Limits())


def test_fold_bn_makes_a_new_ir_and_state():
    t = tiny(policies=Policies(norm="post"))
    run(t.ir, norm, shapes, projections)
    state = initial(t.ir)
    folded, new_state = fold_bn.apply(t.ir, state)
    assert "batchnorm" in kinds(t.ir) and "batchnorm" not in kinds(folded)
    assert "b.bn1.weight" in state and "b.bn1.weight" not in new_state
    assert set(layout(folded)) == set(new_state) and np.all(new_state["b.conv1.bias"] == state["b.bn1.bias"])


def test_fold_bn_retargets_an_add_that_names_the_folded_batchnorm():
    """`add c` names conv c's normalised output; once BN is folded into c, that tensor is the conv's."""
    net = resdsl.compile(ROOT / "tests" / "data" / "tricky" / "temp_name_clash.res")
    folded, _ = fold_bn.apply(net.ir, initial(net.ir))
    sources = [node.residual.source for node in folded if node.residual is not None]
    assert sources and all(source in folded.graph for source in sources)
    assert "conv" in {source.op.kind for source in sources}
