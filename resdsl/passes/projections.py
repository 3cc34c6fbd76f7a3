"""Make every residual add shape-compatible, by the `shortcut` policy.

Needs: shapes inferred.
Guarantees: every add's operands have equal shapes; each add records its
`shortcut_kind` (identity, projection, pad, or removed) and, unless removed,
`shortcut_from`; every inserted node has `origin="projection"` and
`shortcut_of` set to its add. Under full pre-activation (`norm = pre`) a
projection or padding reads the BN → ReLU pre-activation of the block input
that the residual branch starts with, as the paper's reference code does for
units that change dimensions; identity shortcuts read the raw input.

Policies (He et al. 2015, §3.3):
  A     parameter-free: subsample by the stride, zero-pad the extra channels
        (half before, half after)
  B     a 1×1 conv (+ BatchNorm) projection where the shapes differ (default)
  C     a projection on every shortcut
  none  no shortcuts at all: the plain networks of the paper's §4.1

The `projection` policy shapes B and C projections: `conv` strides the 1×1
conv itself (torchvision), `avgpool` average-pools by the stride first and
keeps the conv at stride 1 ("ResNet-D", He et al. 2019; timm's `downsample.1`
and `.2` module names, the pool being `.0`).
"""

from __future__ import annotations

import networkx as nx

from ..diagnostics import Collector, Diagnostic, Label
from ..ir import ops
from ..ir.graph import add_node, check_inserted_paths, operands, preactivation, remove_passthrough, shape_text
from . import shapes
from .norm import bn_path
from .shapes import conv_out

NAME = "projections"


def shortcut_stride(source: tuple, target: tuple) -> int | None:
    """The stride s for which a 1×1, stride-s window maps source H×W onto target H×W."""
    _, h, w = source
    _, th, tw = target
    for stride in range(1, max(h, w) + 1):
        if conv_out(h, 1, stride, 0) == th and conv_out(w, 1, stride, 0) == tw:
            return stride
    return None


def module_prefix(graph: nx.DiGraph, add: int) -> str:
    """`layer2.0.downsample` for a block's first add, `downsample2` for its second."""
    data = graph.nodes[add]
    block = data["block"] + "." if data["block"] else ""
    index = data.get("add_index", 0)
    return f"{block}downsample" + (str(index + 1) if index else "")


def apply(graph: nx.DiGraph) -> None:
    policy = graph.graph["policies"]["shortcut"]
    norm = graph.graph["policies"]["norm"]
    pooled = graph.graph["policies"]["projection"] == "avgpool"
    errors = Collector()
    for add in sorted(n for n in graph if graph.nodes[n]["op"].kind == "add"):
        data = graph.nodes[add]
        main, short = operands(graph, add)
        main_shape, short_shape = graph.nodes[main]["shape"], graph.nodes[short]["shape"]
        if policy == "none":
            data["shortcut_kind"] = "removed"
            graph.remove_edge(short, add)
            remove_passthrough(graph, add, main)
            continue
        # Policy C projects every spatial shortcut; a flat one has nothing to project with.
        data["shortcut_from"] = short
        if main_shape == short_shape and (policy != "C" or len(main_shape) != 3):
            data["shortcut_kind"] = "identity"
            continue
        stride = shortcut_stride(short_shape, main_shape) if len(main_shape) == len(short_shape) == 3 else None
        if stride is None or (policy == "A" and main_shape[0] < short_shape[0]):
            errors.items.append(_mismatch(graph, add, main, short, policy, stride))
            continue
        chain: list[ops.Op]
        paths: list[str | None]
        if policy == "A":
            extra = main_shape[0] - short_shape[0]
            chain = [ops.PadShortcut(stride, extra // 2, extra - extra // 2)]
            data["shortcut_kind"] = "pad"
            paths = [None]
        else:
            prefix = module_prefix(graph, add)
            if pooled:
                # timm writes an Identity in place of the pool at stride 1, so the conv is `.1` either way.
                chain = [ops.AvgPool(stride, stride, 0, ceil_mode=True, count_include_pad=False)] if stride > 1 else []
                chain.append(ops.Conv(main_shape[0], 1, 1, 0))
                conv_path = prefix + ".1"
                paths = [None] * (len(chain) - 1) + [conv_path]
            else:
                chain = [ops.Conv(main_shape[0], 1, stride, 0)]
                conv_path = prefix + ".0"
                paths = [conv_path]
            if norm not in ("pre", "none"):  # pre-activation projections, and `none` places no norms
                chain.append(ops.BatchNorm())
                paths.append(bn_path(conv_path))
            data["shortcut_kind"] = "projection"
        # Full pre-activation: the shortcut reads the block's pre-activated input, as the branch does.
        node, inserted = (preactivation(graph, short, add) if norm == "pre" else None) or short, []
        for op, path in zip(chain, paths, strict=True):
            node = add_node(
                graph,
                op,
                [node],
                span=data["span"],
                origin=NAME,
                path=path,
                block=data["block"],
                template=data["template"],
                shortcut_of=add,
            )
            inserted.append(node)
        shapes.apply(graph, only=inserted)
        edge = graph.edges[short, add]
        graph.remove_edge(short, add)
        graph.add_edge(node, add, **edge)
    errors.raise_if_any()
    check_inserted_paths(graph, NAME)


def _mismatch(graph, add, main, short, policy, stride) -> Diagnostic:
    main_shape, short_shape = graph.nodes[main]["shape"], graph.nodes[short]["shape"]
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
        f"residual add needs equal shapes: main {shape_text(main_shape)}, shortcut {shape_text(short_shape)} "
        f"(shortcut policy {policy})",
        graph.nodes[add]["span"],
        why,
        help_text,
    )
    short_span = graph.nodes[short]["span"]
    if short_span is not None and graph.nodes[short]["op"].kind != "input":
        diag.notes.append(Label(short_span, f"the shortcut, {shape_text(short_shape)}, comes from here"))
    return diag
