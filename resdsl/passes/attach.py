"""Attach what the `attn` and `aa` policies ask of every residual block, as timm's ResNet does.

Needs: norms placed (attention follows a branch's last norm; anti-aliasing follows its conv's activation).
Guarantees:
  attn  every residual add's main path ends with the policy's attention op
        (`se` or `eca`, with the policy's arguments), named `se` as timm names
        any attention (`se2` before a body's second add)
  aa    every conv on a residual branch that strides, or whose stride is a
        block parameter, runs at stride 1 and is followed, after its norm and
        activation, by the policy's anti-aliasing op with that stride, named
        `aa` (timm's BlurPool2d or AvgPool2d; at stride 1 it is an identity,
        as timm's nn.Identity)
Each attached node has origin ATTACH and belongs to the add's (or conv's) branch.
"""

from __future__ import annotations

from dataclasses import replace

from ..ir.graph import IR
from ..ir.node import Node, Origin
from ..ir.policies import OpChoice
from ..limits import Limits
from ..ops import KINDS, make
from .paths import check_inserted_paths

NAME = "attach"


def apply(ir: IR, limits: Limits | None = None) -> None:
    if ir.policies.attn is not None:
        _attention(ir, ir.policies.attn)
    if ir.policies.aa is not None:
        _anti_aliasing(ir, ir.policies.aa)
    if ir.policies.attn is not None or ir.policies.aa is not None:
        check_inserted_paths(ir, Origin.ATTACH)


def _attention(ir: IR, choice: OpChoice) -> None:
    op = make(choice.kind, dict(choice.args))
    for add in [n for n in ir if n.residual is not None]:
        main = ir.operands(add)[0]
        index = add.residual.index  # type: ignore[union-attr]  # a residual add
        path = f"{add.parent.prefix()}se{index + 1 if index else ''}"
        node = ir.add(op, [main], parent=add.parent, span=add.span, origin=Origin.ATTACH, path=path, branch=add)
        ir.replace_operand(add, main, node)


def _anti_aliasing(ir: IR, choice: OpChoice) -> None:
    signature = KINDS[choice.kind].signature
    assert signature is not None  # a family member a spec can name
    counts: dict[object, int] = {}
    for conv in [n for n in ir if "conv" in n.op.families and n.origin is Origin.SPEC and n.branch is not None]:
        stride = conv.op.downsampling()
        expr = conv.exprs.pop("stride", None)
        if stride == 1 and expr is None:
            continue
        conv.op = replace(conv.op, stride=1)  # type: ignore[call-arg]  # a Conv
        values = {"stride": stride} | ({"kernel": stride} if signature.lookup("kernel") else {})
        exprs = {name: expr for name in values} if expr is not None else {}
        counts[conv.parent] = counts.get(conv.parent, 0) + 1
        number = counts[conv.parent]
        path = f"{conv.parent.prefix()}aa{number if number > 1 else ''}"
        ir.insert_after(
            _activated(ir, conv),
            make(choice.kind, dict(choice.args) | values),
            parent=conv.parent,
            span=conv.span,
            origin=Origin.ATTACH,
            path=path,
            branch=conv.branch,
            exprs=exprs,
        )


def _activated(ir: IR, conv: Node) -> Node:
    """The last of the norm and activation the norm policy placed right after `conv` (or `conv` itself)."""
    node = conv
    while True:
        users = ir.users(node)
        if len(users) != 1 or users[0].origin is not Origin.NORM or users[0].parent is not conv.parent:
            return node
        node = users[0]
