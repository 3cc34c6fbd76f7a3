"""Check that each block template's uses can share one class, and record how they differ.

Needs: every pass that inserts ops done (norms, shortcuts).
Guarantees: the instances of a template hold the same ops in the same order
apart from their inserted shortcuts (a resdsl invariant: VerifyError if
not); every size a template's class must write as a number is the same in
all its instances (E0211 otherwise: a `flatten`'s input size, a shortcut's
stride that the branch's own strides do not give, the memory layout a
`layernorm` reads); each template's
`shortcuts` records, per residual add, whether only some instances have a
shortcut module (a constructor flag) and the stride the class writes, and
in `skips` the adds that only some instances keep (`shortcut = drop` removed
them where the shapes differ: a constructor flag too).
"""

from __future__ import annotations

from ..diagnostics import Collector
from ..ir.expr import Expr, Var
from ..ir.graph import IR, VerifyError
from ..ir.node import Node, Origin
from ..ir.shape import shape_text
from ..ir.tree import Module, ModuleKind, ShortcutSlot, Template
from ..limits import Limits

NAME = "templates"


def apply(ir: IR, limits: Limits | None = None) -> None:
    bodies: dict[Module, list[Node]] = {}
    chains = ir.shortcut_chains()
    for node in ir.walk():
        block = node.block
        if block is not None and node.shortcut_of is None:
            bodies.setdefault(block, []).append(node)
    errors = Collector()
    inside: dict[Module, list[Node]] = {}  # module → the ops in it and below, in walk order
    for node in ir.walk():
        module: Module | None = node.parent
        while module is not None:
            inside.setdefault(module, []).append(node)
            module = module.parent
    for template in ir.templates.values():
        instances = [bodies.get(module, []) for module in template.instances]
        ops = [[n for n in nodes if n.residual is None] for nodes in instances]
        if not _same_ops(template, ops, errors):
            continue
        _flat_sizes(ir, template, ops, errors)
        _layouts(ir, template, ops, errors)
        _inner_widths(ir, template, inside, errors)
        kept = [{n.residual.index for n in nodes if n.residual is not None} for nodes in instances]
        template.skips = set().union(*kept) - (set(kept[0]).intersection(*kept[1:]) if kept else set())
        template.shortcuts = _shortcuts(ir, template, instances, chains, errors)
    errors.raise_if_any()


def _same_ops(template: Template, instances: list[list[Node]], errors: Collector) -> bool:
    """One class holds one list of ops: the policies may not place different ones in different uses
    (E0211: a block called once as a branch's last conv, whose norm gets no activation, and once
    before it, whose norm does)."""
    kinds = [[n.op.kind for n in nodes] for nodes in instances]
    odd = next((i for i, k in enumerate(kinds) if k != kinds[0]), None)
    if odd is None:
        return True
    first, other = template.instances[0], template.instances[odd]
    if all(n.origin is Origin.SPEC for nodes in instances for n in nodes):  # not a policy's doing
        raise VerifyError(f"the instances of block `{template.name}` hold different ops")
    shown = "; ".join(f"{', '.join(kinds[i])} in `{m.path}`" for i, m in ((0, first), (odd, other)))
    errors.add(
        "E0211",
        f"the uses of block `{template.name}` hold different ops ({shown})",
        other.span,
        "the policies place other ops in this use",
        "the norm policy gives a residual branch's last conv no activation: call a block of its own "
        "there, or write the norms yourself under `policy norm = none`",
    )
    return False


def _flat_sizes(ir: IR, template: Template, instances: list[list[Node]], errors: Collector) -> None:
    """A `flatten` in a block must see one spatial size in every use: the class writes it as a number."""
    for position, node in enumerate(instances[0]):
        if node.op.kind != "flatten":
            continue
        sizes = {ir.operands(nodes[position])[0].shape[1:] for nodes in instances}  # type: ignore[index]
        if len(sizes) > 1:
            shown = ", ".join(shape_text(size) or "flat" for size in sorted(sizes))
            errors.add(
                "E0211",
                f"`flatten` in block `{template.name}` sees different spatial sizes ({shown})",
                node.span,
                "one size per block template",
                "put `gap` before `flatten`, or flatten outside the block",
            )


def _layouts(ir: IR, template: Template, instances: list[list[Node]], errors: Collector) -> None:
    """An op whose module depends on its input's layout and rank (`layernorm`: LayerNorm2d on N×C×H×W,
    nn.LayerNorm on N×H×W×C or flat features) must see one of them in every use of its block."""
    for position, node in enumerate(instances[0]):
        if not node.op.layout_module:
            continue
        seen = set()
        for nodes in instances:
            operand = ir.operands(nodes[position])[0]
            seen.add((operand.channels_last, len(operand.shape or ())))
        if len(seen) > 1:
            errors.add(
                "E0211",
                f"`{node.op.kind}` in block `{template.name}` reads a channels-first feature map in one use "
                "and a channels-last map or flat features in another",
                node.span,
                "one layout per block template",
                "use the block in one layout: put `channels_last` or `channels_first` around its calls",
            )


def _inner_widths(ir: IR, template: Template, inside: dict[Module, list[Node]], errors: Collector) -> None:
    """A block called inside a block: the class writes the channels it returns as its input's when
    they are equal in the first use, else as the call's argument for a parameter of the inner block
    that equals them in every use (recorded in `template.widths`), else as a number
    (backends/torch_src.py), so one of those must hold in every use (E0211 otherwise: `inner(c)`
    returning `4 * c` channels for different `c`)."""
    template.widths = {}
    first = template.instances[0]
    for index, child in enumerate(_callees(first)):
        widths = []
        uses = [_callees(module)[index] for module in template.instances]
        for use in uses:
            nodes = inside.get(use, [])
            if not nodes:
                return
            members = set(nodes)
            source = next(o for n in nodes for o in ir.operands(n) if o not in members)
            assert source.shape is not None and nodes[-1].shape is not None
            widths.append((use.path, source.shape[0], nodes[-1].shape[0]))
        _, given, returned = widths[0]
        if given == returned:
            odd = [(path, out) for path, into, out in widths if out != into]
            if not odd:
                continue
        param = _width_param(uses, [w for _, _, w in widths])
        local = child.path[len(first.prefix()) :]
        if param is not None:
            template.widths[local] = param
            continue
        if given != returned and len({out for _, _, out in widths}) == 1:
            continue
        shown = ", ".join(f"{out} in `{path}`" for path, _, out in widths[:4])
        errors.add(
            "E0211",
            f"block `{template.name}` calls `{local}`, which returns different channel counts ({shown})",
            child.span,
            "one width per block template",
            "return as many channels as the inner block takes, or call the inner block from the network",
        )


def _callees(instance: Module) -> list[Module]:
    """The blocks and stages a block instance calls itself, those in its groups (`paths.0`) included."""
    found = []
    for child in instance.children:
        if child.kind in (ModuleKind.BLOCK, ModuleKind.STAGE):
            found.append(child)
        elif child.kind is ModuleKind.LIST:
            found += [member for member in child.children if member.kind is ModuleKind.BLOCK]
    return found


def _width_param(uses: list[Module], widths: list[int]) -> str | None:
    """The first parameter of an inner block whose value is the width it returns, in every use."""
    if uses[0].kind is not ModuleKind.BLOCK or uses[0].template is None:
        return None
    for param in uses[0].template.params:
        if all(use.args.get(param.name) == width for use, width in zip(uses, widths, strict=True)):
            if all(type(use.args.get(param.name)) is int for use in uses):
                return param.name
    return None


def branch_path(ir: IR, add: Node) -> list[Node]:
    """The ops of `add`'s residual branch on one path back from the add to the shortcut's source.

    A branch may fork and join (Res2Net's pieces, SKNet's paths and the weights that select them);
    at a join the path follows the operand in the branch with the largest feature map, so it never
    takes the pooled weights for the way the feature map went.
    """
    path: list[Node] = []
    node = ir.operands(add)[0]
    while node.branch is add and node.shortcut_of is None:
        path.append(node)
        operands = ir.operands(node)[: node.op.value_operands()]
        if not operands:
            break
        node = max(operands, key=lambda o: (o.branch is add, _area(o)))
    return path


def _area(node: Node) -> int:
    shape = node.shape or ()
    return shape[1] * shape[2] if len(shape) == 3 else 0


def branch_stride(ir: IR, add: Node) -> int:
    """The product of the strides on `add`'s residual branch, along one path through it."""
    stride = 1
    for node in branch_path(ir, add):
        stride *= node.op.downsampling()
    return stride


def inner_stride(node: Node, owner: Module) -> Expr | None | bool:
    """The stride of `node`, an op of a block that block instance `owner` calls (directly, or through
    blocks it calls), as `owner`'s class can write it: the call's argument expression for the inner
    block's parameter the stride names (followed through each call), None where a call gives a constant
    (an inner block's own constant stride included), False where it cannot."""
    inner = node.block
    expr = node.exprs.get("stride")
    while inner is not None and inner is not owner:
        if expr is None:
            return None
        if not (isinstance(expr, Var) and expr.name in inner.args):
            return False
        expr = inner.arg_exprs.get(expr.name)
        inner = inner.block_above()
    return expr if inner is owner else False


def _shortcuts(
    ir: IR,
    template: Template,
    instances: list[list[Node]],
    chains: dict[Node, list[Node]],
    errors: Collector,
) -> dict[int, ShortcutSlot]:
    """Each residual add's shortcut slot. Its stride follows the branch's when, in every use, it is the
    product of the strides on the branch, the blocks the class calls included where their strides come
    from the call (`conv2 = conv_norm_act(w, k=3, s=stride)`)."""
    slots: dict[int, ShortcutSlot] = {}
    adds = [{n.residual.index: n for n in nodes if n.residual is not None} for nodes in instances]
    for index in sorted(set().union(*adds)):
        owners = [(nodes, found[index]) for nodes, found in zip(instances, adds, strict=True) if index in found]
        add = owners[0][1]
        assert add.residual is not None
        with_module = [(nodes, a) for nodes, a in owners if a in chains]
        if not with_module:
            continue
        strides = [chains[a][0].op.downsampling() for _, a in with_module]
        follows_branch = all(s == branch_stride(ir, a) for s, (_, a) in zip(strides, with_module, strict=True)) and all(
            inner_stride(n, a.block) is not False  # type: ignore[arg-type]
            for _, a in with_module
            for n in branch_path(ir, a)
            if n.block is not a.block and hasattr(n.op, "stride")
        )
        if not follows_branch and len(set(strides)) > 1:
            shown = ", ".join(f"{s} in `{a.parent.path}`" for s, (_, a) in zip(strides, with_module, strict=True))
            errors.add(
                "E0211",
                f"the shortcut of block `{template.name}` needs different strides ({shown}) that its "
                f"branch's strides do not give",
                add.span,
                "one stride per block template",
                "make the branch stride the way the shortcut must (or move the add out of the block)",
            )
            continue
        slots[add.residual.index] = ShortcutSlot(
            optional=len(with_module) < len(instances),
            stride=None if follows_branch else strides[0],
        )
    return slots
