"""Make every residual add shape-compatible, by the `shortcut` policy.

Needs: shapes inferred.
Guarantees: every add's operands have equal shapes; each add's `residual`
records its shortcut kind and source; every inserted node has origin
PROJECTION and `shortcut_of` set to its add, and projections with modules
live in a SEQUENCE module named `downsample` (`downsample2` for a block's
second add) in the add's module. Under full pre-activation (`norm = pre`) a
projection or padding reads the BN → ReLU pre-activation of the block input
that the residual branch starts with, as the paper's reference code does for
units that change dimensions; identity shortcuts read the raw input.

Policies (He et al. 2015, §3.3):
  A     parameter-free: subsample by the stride, zero-pad the extra channels
        (half before, half after)
  B     a 1×1 conv (+ the norm policy's norm) projection where the shapes differ (default)
  C     a projection on every shortcut
  drop  identity where the shapes match; where they differ the add is dropped
        (MobileNetV2's inverted residuals, timm's `has_skip`)
  none  no shortcuts at all: the plain networks of the paper's §4.1

The `projection` policy shapes B and C projections: `conv` strides the 1×1
conv itself (torchvision), `avgpool` average-pools by the stride first and
keeps the conv at stride 1 ("ResNet-D", He et al. 2019; timm's `downsample.1`
and `.2` module names, the pool being `.0`). `down_kernel` widens a strided
projection conv (timm's down_kernel_size: 3 in SENet-154).
"""

from __future__ import annotations

from ..diagnostics import Collector, Diagnostic, Label
from ..ir.graph import IR
from ..ir.node import DroppedAdd, Node, Origin, ShortcutKind
from ..ir.shape import Shape, shape_text
from ..ir.tree import ModuleKind
from ..limits import Limits
from ..ops.base import Op
from ..ops.conv import Conv
from ..ops.pad_shortcut import PadShortcut
from ..ops.pool import AvgPool
from ..ops.window import conv_out
from . import shapes
from .norm import bn_path, plain_norm
from .paths import check_inserted_paths

NAME = "projections"


def shortcut_stride(source: Shape, target: Shape) -> int | None:
    """The smallest stride s for which a 1×1, stride-s window maps source H×W onto target H×W.

    Computed, not searched: a side of n maps onto (n - 1) // s + 1, so each side allows an interval
    of strides, and sides of millions (an error upstream) must not cost millions of steps.
    """
    _, h, w = source
    _, th, tw = target
    low, high = 1, max(h, w)
    for n, m in ((h, th), (w, tw)):
        if not 1 <= m <= n:
            return None
        low = max(low, (n - 1) // m + 1)
        if m > 1:
            high = min(high, (n - 1) // (m - 1))
    if low > high:
        return None
    assert conv_out(h, 1, low, 0) == th and conv_out(w, 1, low, 0) == tw
    return low


def module_name(add: Node, word: str = "downsample") -> str:
    """`downsample` for a body's first add, `downsample2` for its second (`shortcut`, `shortcut2` under
    `policy shortcut_module = shortcut`)."""
    assert add.residual is not None
    index = add.residual.index
    return word + (str(index + 1) if index else "")


def apply(ir: IR, limits: Limits | None = None) -> None:
    errors = Collector()
    for add in [n for n in ir if n.op.kind == "add"]:
        main, short = ir.operands(add)
        assert add.residual is not None and main.shape is not None and short.shape is not None
        if ir.policies.shortcut == "none":
            _remove(ir, add, main, short)
            continue
        if ir.policies.shortcut == "drop" and main.shape != short.shape:
            _remove(ir, add, main, short)
            continue
        add.residual.source = short
        # Policy C projects every spatial shortcut; a flat one has nothing to project with.
        if main.shape == short.shape and (ir.policies.shortcut != "C" or len(main.shape) != 3):
            add.residual.kind = ShortcutKind.IDENTITY
            continue
        stride = shortcut_stride(short.shape, main.shape) if len(main.shape) == len(short.shape) == 3 else None
        if stride is None or (ir.policies.shortcut == "A" and main.shape[0] < short.shape[0]):
            errors.items.append(_mismatch(ir, add, main, short, stride))
            continue
        _insert(ir, add, short, _chain(ir, add, main.shape, short.shape, stride))
    errors.raise_if_any()
    check_inserted_paths(ir, Origin.PROJECTION)


def _remove(ir: IR, add: Node, main: Node, short: Node) -> None:
    """Policy none (or drop, where the shapes differ): the add goes, and with it the branch it closed."""
    assert main.shape is not None and short.shape is not None
    ir.dropped.append(DroppedAdd(add.span, add.block.path if add.block else ir.name, main.shape, short.shape))
    for node in ir:
        if node.branch is add:
            node.branch = None
    ir.disconnect(short, add)
    ir.remove_passthrough(add, main)


def _chain(ir: IR, add: Node, main_shape: Shape, short_shape: Shape, stride: int) -> list[tuple[Op, str | None]]:
    """The ops of `add`'s shortcut, each with its name in the shortcut's sequence (None: not numbered)."""
    assert add.residual is not None
    if ir.policies.shortcut == "A":
        extra = main_shape[0] - short_shape[0]
        add.residual.kind = ShortcutKind.PAD
        return [(PadShortcut(stride, extra // 2, extra - extra // 2), None)]
    add.residual.kind = ShortcutKind.PROJECTION
    chain: list[tuple[Op, str | None]]
    named = ir.policies.projection_names != "numbered"  # timm's DownsampleConv/DownsampleAvg: pool, conv, norm
    if ir.policies.projection == "avgpool":
        # timm writes an Identity in place of the pool at stride 1, so the conv is `.1` either way.
        pool_op = AvgPool(stride, stride, 0, ceil_mode=True, count_include_pad=False)
        pool = [(pool_op, "pool" if named else "0")] if stride > 1 else []
        chain = [*pool, (ir.policies.conv(Conv(main_shape[0], 1, 1, 0)), "conv" if named else "1")]
    else:
        # timm's down_kernel_size (SENet-154: 3) where the projection strides; the padding keeps
        # the 1x1 conv's output size (timm's get_padding for its stride 2).
        kernel = 1 if stride == 1 else ir.policies.down_kernel
        conv = ir.policies.conv(Conv(main_shape[0], kernel, stride, (kernel - 1) // 2))
        chain = [(conv, "conv" if named else "0")]
    if ir.policies.norm not in ("pre", "none"):  # pre-activation projections, and `none` places no norms
        conv_name = chain[-1][1]
        assert conv_name is not None
        word = ir.policies.norm_name
        # The norm policy's op, as timm's downsample uses the network's norm_layer (resnet50_gn: GroupNorm).
        norm = plain_norm(ir)
        chain.append((norm, word if named else bn_path(conv_name)))
    return chain


def _insert(ir: IR, add: Node, short: Node, chain: list[tuple[Op, str | None]]) -> None:
    """Put `chain` on `add`'s shortcut, reading `short` (or its pre-activation under full pre-activation)."""
    node = (ir.preactivation(short, add) if ir.policies.norm == "pre" else None) or short
    parent = add.parent
    if any(name is not None for _, name in chain):
        parent = ir.module(module_name(add, ir.policies.shortcut_module), ModuleKind.SEQUENCE, add.parent, add.span)
    inserted = []
    for op, name in chain:
        path = None if name is None else parent.prefix() + name
        node = ir.add(op, [node], parent=parent, span=add.span, origin=Origin.PROJECTION, path=path, shortcut_of=add)
        inserted.append(node)
    shapes.apply(ir, only=inserted)
    ir.replace_operand(add, short, node)


def _mismatch(ir: IR, add: Node, main: Node, short: Node, stride: int | None) -> Diagnostic:
    assert main.shape is not None and short.shape is not None
    policy = ir.policies.shortcut
    if stride is None:
        why = "no 1×1 strided projection maps the shortcut onto the main path"
    else:
        why = "option A can only add channels, and the main path has fewer"
    help_text = {
        "A": "use `policy shortcut = B` to insert a 1×1 projection instead",
        "B": "a shortcut must be at least as large as the main path; add a tensor from before the downsampling",
        "C": "a shortcut must be at least as large as the main path; add a tensor from before the downsampling",
    }[policy]
    diag = Diagnostic(
        "E0203",
        f"residual add needs equal shapes: main {shape_text(main.shape)}, shortcut {shape_text(short.shape)} "
        f"(shortcut policy {policy})",
        add.span,
        why,
        help_text,
    )
    if short.span is not None and short.op.kind != "input":
        diag.notes.append(Label(short.span, f"the shortcut, {shape_text(short.shape)}, comes from here"))
    return diag
