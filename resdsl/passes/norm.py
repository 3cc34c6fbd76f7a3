"""Place BatchNorm and ReLU around convs and residual adds, by the `norm` policy.

Needs: a lowered IR (convs carry `norm` and `branch`).
Guarantees: every conv with `norm` set has the BatchNorm/ReLU its order asks
for; inserted BatchNorms are named after their conv (`conv2` → `bn2`) so the
generated modules carry torchvision's state_dict keys.

The orders are those of He et al. 2016 ("Identity Mappings"), Figure 4, for a
residual branch ending in conv_n:
  post (original)   conv→BN→ReLU … conv_n→BN, add, ReLU
  bn_after_add      conv→BN→ReLU … conv_n, add, BN, ReLU
  relu_before_add   conv→BN→ReLU … conv_n→BN→ReLU, add
  relu_preact       ReLU→conv→BN … ReLU→conv_n→BN, add
  pre (full_preact) BN→ReLU→conv …, add; and one BN→ReLU after the last block
Convs outside residual branches (the stem) get conv→BN→ReLU, except under
`pre`, where the first block's pre-activation normalises them. A conv whose
spec says `norm=post` gets conv→BN→ReLU under every order (a pre-activation
network's deep stem); `norm=false` gets nothing.
"""

from __future__ import annotations

import re

from ..ir.graph import IR
from ..ir.node import Node, Origin
from ..limits import Limits
from ..ops.batchnorm import BatchNorm
from ..ops.relu import ReLU
from .paths import check_inserted_paths

NAME = "norm"


def bn_path(conv_path: str) -> str:
    """`layer1.0.conv2` → `layer1.0.bn2`; `downsample.0` → `downsample.1`; else `<name>_bn`."""
    head, _, last = conv_path.rpartition(".")
    prefix = head + "." if head else ""
    match = re.fullmatch(r"conv(\w*)", last)
    if match:
        return prefix + "bn" + match.group(1)
    if last.isdigit():
        return prefix + str(int(last) + 1)
    return prefix + last + "_bn"


def _like(node: Node, **extra) -> dict:
    """The fields of a node placed beside `node`: same span, module and branch."""
    fields = dict(span=node.span, origin=Origin.NORM, parent=node.parent, branch=node.branch)
    fields.update(extra)
    return fields


def _bn(node: Node, conv: Node) -> dict:
    assert conv.path is not None  # convs are modules
    return _like(node, path=bn_path(conv.path))


def apply(ir: IR, limits: Limits) -> None:
    order = ir.policies.norm
    nodes = list(ir)
    convs = [n for n in nodes if n.op.kind == "conv" and n.norm]
    if order == "none":  # only the convs that ask for their own norm
        convs = [n for n in convs if n.norm == "post"]
    last_conv = {conv.branch: conv for conv in convs if conv.branch is not None}
    for conv in convs:
        if conv.norm == "post":
            after = ir.insert_after(conv, BatchNorm(), **_bn(conv, conv))
            ir.insert_after(after, ReLU(), **_like(conv))
            continue
        _around_conv(ir, conv, order, final=conv.branch is not None and last_conv[conv.branch] is conv)
    adds = [n for n in nodes if n.op.kind == "add"]
    for add in adds:
        _after_add(ir, add, order, last_conv.get(add))
    if order == "pre" and adds:
        last = adds[-1]
        after = ir.insert_after(last, BatchNorm(), **_like(last, path="bn_final", parent=ir.root))
        ir.insert_after(after, ReLU(), **_like(last, parent=ir.root))
    check_inserted_paths(ir, Origin.NORM)


def _around_conv(ir: IR, conv: Node, order: str, final: bool) -> None:
    if conv.branch is None:
        if order != "pre":
            after = ir.insert_after(conv, BatchNorm(), **_bn(conv, conv))
            ir.insert_after(after, ReLU(), **_like(conv))
    elif order in ("post", "relu_before_add") or (order == "bn_after_add" and not final):
        after = ir.insert_after(conv, BatchNorm(), **_bn(conv, conv))
        if not final or order == "relu_before_add":
            ir.insert_after(after, ReLU(), **_like(conv))
    elif order == "relu_preact":
        ir.insert_before(conv, ReLU(), **_like(conv))
        ir.insert_after(conv, BatchNorm(), **_bn(conv, conv))
    elif order == "pre":
        ir.insert_before(conv, BatchNorm(), **_bn(conv, conv))
        ir.insert_before(conv, ReLU(), **_like(conv))


def _after_add(ir: IR, add: Node, order: str, conv: Node | None) -> None:
    if order == "post":
        ir.insert_after(add, ReLU(), **_like(add))
    elif order == "bn_after_add":
        # Named after the branch's last conv, whose BatchNorm moved past the add.
        if conv is not None and conv.norm is True:  # a `norm=post` conv has its own BatchNorm
            assert conv.path is not None
            path = bn_path(conv.path)
        else:  # a branch without a normed conv of its own: number by the add, like `downsample2`
            assert add.residual is not None
            index = add.residual.index
            path = add.parent.prefix() + "bn_add" + (str(index + 1) if index else "")
        after = ir.insert_after(add, BatchNorm(), **_like(add, path=path))
        ir.insert_after(after, ReLU(), **_like(add))
