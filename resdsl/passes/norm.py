"""Place normalisation and activation modules around convs and residual adds, by the `norm` policy.

Needs: a lowered IR (convs carry `norm` and `branch`).
Guarantees: every conv with `norm` set has the norm and activation its order
asks for, of the kinds the `norm_op` and `act` policies choose (BatchNorm and
ReLU by default); they are named after their conv (`conv2` → `bn2`, `act2`)
so the generated modules carry torchvision's and timm's state_dict keys and
module names; the activation after an add is named after the branch's last
conv (`act3` in a bottleneck), as timm names it. Under `norm_name = norm` the
norms are `norm2` and the final one `norm`, as timm's pre-activation ResNetV2 names them. The modules of each spec
sequence stay numbered 0, 1, ... with the norms and activations placed in it,
as nn.Sequential numbers them (timm's deep stem: `conv1.0` conv, `conv1.1`
BN, `conv1.2` ReLU, `conv1.3` conv, ...).

The orders are those of He et al. 2016 ("Identity Mappings"), Figure 4, for a
residual branch ending in conv_n:
  post (original)   conv→BN→ReLU … conv_n→BN, add, ReLU
  bn_after_add      conv→BN→ReLU … conv_n, add, BN, ReLU
  relu_before_add   conv→BN→ReLU … conv_n→BN→ReLU, add
  relu_preact       ReLU→conv→BN … ReLU→conv_n→BN, add
  pre (full_preact) BN→ReLU→conv …, add; and one BN→ReLU after the last block
                    (unless `final_norm = false`, as CIFAR pre-activation ResNets have it)
Convs outside residual branches (the stem) get conv→BN→ReLU, except under
`pre`, where the first block's pre-activation normalises them. A conv whose
spec says `norm=post` gets conv→BN→ReLU under every order (a pre-activation
network's deep stem); `norm=false` gets nothing.
"""

from __future__ import annotations

import re

from ..ir.graph import IR
from ..ir.node import Node, Origin
from ..ir.tree import Module, ModuleKind
from ..limits import Limits
from ..ops import make
from ..ops.base import Op
from .paths import check_inserted_paths

NAME = "norm"


def bn_path(conv_path: str, word: str = "bn") -> str:
    """`layer1.0.conv2` → `layer1.0.bn2` (`norm2` when `word` is `norm`, as timm's resnetv2 names them);
    `downsample.0` → `downsample.1`; else `<name>_bn`."""
    return _beside(conv_path, word)


def act_path(conv_path: str) -> str:
    """`layer1.0.conv2` → `layer1.0.act2`; else `<name>_act` (sequences renumber their members)."""
    return _beside(conv_path, "act")


def _beside(conv_path: str, word: str) -> str:
    head, _, last = conv_path.rpartition(".")
    prefix = head + "." if head else ""
    match = re.fullmatch(r"conv(\w*)", last)
    if match:
        return prefix + word + match.group(1)
    if last.isdigit() and word != "act":
        return prefix + str(int(last) + 1)
    return f"{prefix}{last}_{word}"


class _Placer:
    """Inserts the policy's norm and activation ops beside a node."""

    def __init__(self, ir: IR):
        self.ir = ir
        self.first: dict[Module, Node] = {}  # module → the first op inside it (walk order, before placing)
        for node in ir.walk():
            module: Module | None = node.parent
            while module is not None:
                self.first.setdefault(module, node)
                module = module.parent
        self.norm = make(ir.policies.norm_op.kind, dict(ir.policies.norm_op.args))
        self.act = make(ir.policies.act.kind, dict(ir.policies.act.args))
        # Where no activation follows, a norm with a nonlinearity of its own goes without it (timm's
        # `apply_act=False`): EvoNorm-S0, FRN.
        self.plain = plain_norm(ir)
        self.word = ir.policies.norm_name
        self.preacts: set[Node] = set()  # the pre-activations placed before a conv that opens a block

    def _fields(self, node: Node, path: str, **extra) -> dict:
        """Beside `node`: its span, module and branch."""
        fields = dict(span=node.span, origin=Origin.NORM, parent=node.parent, branch=node.branch, path=path)
        fields.update(extra)
        return fields

    def after(self, node: Node, op: Op, path: str, **extra) -> Node:
        if op is self.act and self.norm.includes_act():
            return node  # the norm before it is its own activation
        return self.ir.insert_after(node, op, **self._fields(node, path, **extra))

    def before(self, node: Node, op: Op, path: str, parent: Module | None = None) -> Node:
        fields = self._fields(node, path)
        if parent is not None:
            fields["parent"] = parent
        return self.ir.insert_before(node, op, **fields)

    def holder(self, conv: Node) -> Module | None:
        """The outermost block inside the branch's block that `conv` opens (`conv1 = conv_norm_act(w)`; or
        `paths.0 = conv_norm_act(c)` in a block the branch calls): what precedes the conv belongs to the
        block around it, which reads it as its pre-activated input, so every use of the inner template
        holds the same ops."""
        assert conv.branch is not None
        outer = conv.branch.parent
        found, module = None, conv.block
        while module is not None and module is not outer and self.first.get(module) is conv:
            found, module = module, module.block_above()
        return found

    def _sibling(self, group: Module, word: str) -> Module:
        """The group beside block group `group` that holds the norms (`word` "bn"/"norm") or activations
        ("act") placed for its members: `convs` → `bns`, `acts`; `paths` → `paths_bn`, `paths_act`."""
        assert group.parent is not None
        name = _beside(group.name, word)
        sibling = next((m for m in group.parent.children if m.name == name and m.kind is ModuleKind.LIST), None)
        return sibling or self.ir.module(name, ModuleKind.LIST, group.parent, group.span)

    def beside(self, path: str, parent: Module, word: str) -> tuple[str, Module]:
        """The path and module of the norm (`word` "bn" or "norm") or activation ("act") placed beside the
        module at `path` under `parent`: `conv1` → `bn1`; beside a member of a block's group, a member of a
        group of its own with the member's name: `convs.0` → `bns.0`, `acts.0` (timm's Res2Net),
        `paths.1` → `paths_bn.1`."""
        if parent.kind is not ModuleKind.LIST:
            return _beside(path, word), parent
        sibling = self._sibling(parent, word)
        return sibling.prefix() + path.rpartition(".")[2], sibling

    def conv(self, conv: Node, order: str, final: bool) -> None:
        assert conv.path is not None  # convs are modules
        (bn, bn_parent), (act, act_parent) = (self.beside(conv.path, conv.parent, w) for w in (self.word, "act"))
        if conv.norm == "post" or (conv.branch is None and order != "pre"):
            normed = self.after(conv, self.norm, bn, parent=bn_parent)
            self.after(normed, self.act, act, parent=act_parent)
        elif conv.branch is None:
            return  # under `pre`, the first block's pre-activation normalises the stem
        elif order in ("post", "relu_before_add") or (order == "bn_after_add" and not final):
            activated = not final or order == "relu_before_add"
            normed = self.after(conv, self.norm if activated else self.plain, bn, parent=bn_parent)
            if activated:
                self.after(normed, self.act, act, parent=act_parent)
        elif order in ("relu_preact", "pre"):
            if self.ir.operands(conv)[0] not in self.preacts:  # else the block its neighbour opens reads one
                self._preactivate(conv, order, (bn, bn_parent), (act, act_parent))
            if order == "relu_preact":
                self.after(conv, self.plain, bn, parent=bn_parent)

    def _preactivate(self, conv: Node, order: str, bn: tuple[str, Module], act: tuple[str, Module]) -> None:
        """The norm (`pre`) and activation placed before `conv`. Before a conv that opens an inner block they
        go in the block around it, named after the inner one (`conv1 = conv_norm_act(w)`: `bn1`, `act1`, as
        timm's PreBottleneck), and everything in that block that read the raw input reads them instead."""
        holder = self.holder(conv)
        if holder is not None:
            assert holder.parent is not None
            bn, act = (self.beside(holder.path, holder.parent, w) for w in (self.word, "act"))
        (raw,) = self.ir.operands(conv)
        if order == "pre":
            self.before(conv, self.norm, *bn)
        if order == "relu_preact" or not self.norm.includes_act():  # EvoNorm-S0, FRN: the norm is the activation
            self.before(conv, self.act, *act)
        (preact,) = self.ir.operands(conv)
        self.preacts.add(preact)
        if holder is not None:
            for user in self.ir.users(raw):
                if _within(user.parent, holder):
                    self.ir.replace_operand(user, raw, preact)

    def add(self, add: Node, order: str, conv: Node | None) -> None:
        """The norm and activation an order places after a residual add, named after the branch's last conv."""
        if order not in ("post", "bn_after_add"):
            return
        # Named beside the conv when it lives in the add's module (not inside a `seq`, whose
        # members are numbered), or beside the block that holds it when that block is named like a
        # conv (`conv3 = conv_norm(...)`: `act3`, as timm's RegNet); a `norm=post` conv has its own norm.
        holder = _child_of(conv.parent, add.parent) if conv is not None and conv.norm is True else None
        if conv is not None and conv.norm is True and conv.parent is add.parent:
            assert conv.path is not None
            bn, act = bn_path(conv.path, self.word), act_path(conv.path)
        elif holder is not None and holder.kind is ModuleKind.BLOCK and re.fullmatch(r"conv\w*", holder.name):
            bn, act = bn_path(holder.path, self.word), act_path(holder.path)
        else:  # a branch without a normed conv of its own: number by the add, like `downsample2`
            assert add.residual is not None
            index = add.residual.index
            suffix = str(index + 1) if index else ""
            bn, act = (f"{add.parent.prefix()}{word}_add{suffix}" for word in (self.word, "act"))
        if order == "bn_after_add":
            add = self.after(add, self.norm, bn)
        self.after(add, self.act, act)


def plain_norm(ir: IR) -> Op:
    """The `norm_op` policy's norm without a nonlinearity of its own, for where no activation follows."""
    choice = ir.policies.norm_op
    args = dict(choice.args)
    signature = make(choice.kind, args).signature
    if signature is not None and signature.lookup("act") is not None:
        args["act"] = False
    return make(choice.kind, args)


def apply(ir: IR, limits: Limits) -> None:
    order = ir.policies.norm
    place = _Placer(ir)
    nodes = list(ir)
    convs = [n for n in nodes if "conv" in n.op.families and n.norm]
    if order == "none":  # only the convs that ask for their own norm
        convs = [n for n in convs if n.norm == "post"]
    last_conv = {conv.branch: conv for conv in convs if conv.branch is not None}
    for conv in convs:
        place.conv(conv, order, final=conv.branch is not None and last_conv[conv.branch] is conv)
    adds = [n for n in nodes if n.op.kind == "add"]
    for add in adds:
        place.add(add, order, last_conv.get(add))
    if order == "pre" and adds and ir.policies.final_norm:
        last = _block_end(ir, adds[-1])
        norm, act = ("norm", "act") if place.word == "norm" else ("bn_final", "act_final")
        normed = place.after(last, place.norm, norm, parent=ir.root, branch=None)
        place.after(normed, place.act, act, parent=ir.root, branch=None)
    _number_sequences(ir)
    check_inserted_paths(ir, Origin.NORM)


def _block_end(ir: IR, node: Node) -> Node:
    """The output of the outermost block instance holding `node` (ops may follow a block's last add),
    or `node` outside blocks: the final norm of `pre` goes after the last block."""
    outer = node.block
    while outer is not None and outer.parent is not None and _block_of(outer.parent) is not None:
        outer = _block_of(outer.parent)
    if outer is None:
        return node
    walk = ir.walk()
    inside = [n for n in walk[walk.index(node) :] if _within(n.parent, outer)]
    return inside[-1]


def _child_of(module: Module | None, ancestor: Module) -> Module | None:
    """The child of `ancestor` that holds `module` (itself or above it), or None."""
    while module is not None and module.parent is not ancestor:
        module = module.parent
    return module


def _block_of(module: Module) -> Module | None:
    while module is not None and module.kind is not ModuleKind.BLOCK:
        module = module.parent  # type: ignore[assignment]
    return module


def _within(module: Module | None, ancestor: Module) -> bool:
    while module is not None:
        if module is ancestor:
            return True
        module = module.parent
    return False


def _number_sequences(ir: IR) -> None:
    """Name the modules of each spec sequence 0, 1, ... in walk order, the placed ones included."""
    members: dict[Module, list[Node]] = {}
    for node in ir.walk():
        if node.parent.kind is ModuleKind.SEQUENCE and node.op.is_module:
            members.setdefault(node.parent, []).append(node)
    for sequence, nodes in members.items():
        for index, node in enumerate(nodes):
            node.path = f"{sequence.prefix()}{index}"
