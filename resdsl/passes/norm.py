"""Place BatchNorm and ReLU around convs and residual adds, by the `norm` policy.

Needs: a lowered graph (convs carry `auto_norm` and `branch`).
Guarantees: every auto-normed conv has the BatchNorm/ReLU its order asks for;
inserted BatchNorms are named after their conv (`conv2` → `bn2`) so the
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

import networkx as nx

from ..ir import ops
from ..ir.graph import check_inserted_paths, insert_after, insert_before

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


def apply(graph: nx.DiGraph) -> None:
    order = graph.graph["policies"]["norm"]
    nodes = sorted(graph.nodes)
    convs = [n for n in nodes if graph.nodes[n]["op"].kind == "conv" and graph.nodes[n].get("auto_norm", True)]
    if order == "none":  # only the convs that ask for their own norm
        convs = [n for n in convs if graph.nodes[n]["auto_norm"] == "post"]
    adds = [n for n in nodes if graph.nodes[n]["op"].kind == "add"]
    last_conv = {}
    for conv in convs:
        if graph.nodes[conv]["branch"] is not None:
            last_conv[graph.nodes[conv]["branch"]] = conv

    def like(node: int, **extra) -> dict:
        data = graph.nodes[node]
        attrs = dict(
            span=data["span"], origin=NAME, block=data["block"], template=data["template"], branch=data["branch"]
        )
        attrs.update(extra)
        return attrs

    def bn(node: int, conv: int) -> dict:
        return like(node, path=bn_path(graph.nodes[conv]["path"]))

    for conv in convs:
        if graph.nodes[conv].get("auto_norm") == "post":
            after = insert_after(graph, conv, ops.BatchNorm(), **bn(conv, conv))
            insert_after(graph, after, ops.ReLU(), **like(conv))
            continue
        in_branch = graph.nodes[conv]["branch"] is not None
        final = in_branch and last_conv[graph.nodes[conv]["branch"]] == conv
        if not in_branch:
            if order != "pre":
                after = insert_after(graph, conv, ops.BatchNorm(), **bn(conv, conv))
                insert_after(graph, after, ops.ReLU(), **like(conv))
        elif order in ("post", "relu_before_add") or (order == "bn_after_add" and not final):
            after = insert_after(graph, conv, ops.BatchNorm(), **bn(conv, conv))
            if not final or order == "relu_before_add":
                insert_after(graph, after, ops.ReLU(), **like(conv))
        elif order == "relu_preact":
            insert_before(graph, conv, ops.ReLU(), **like(conv))
            insert_after(graph, conv, ops.BatchNorm(), **bn(conv, conv))
        elif order == "pre":
            insert_before(graph, conv, ops.BatchNorm(), **bn(conv, conv))
            insert_before(graph, conv, ops.ReLU(), **like(conv))

    for add in adds:
        if order == "post":
            insert_after(graph, add, ops.ReLU(), **like(add))
        elif order == "bn_after_add":
            # Named after the branch's last conv, whose BatchNorm moved past the add.
            conv = last_conv.get(add)
            if conv is not None and graph.nodes[conv]["auto_norm"] is True:  # a `norm=post` conv has its own BN
                path = bn_path(graph.nodes[conv]["path"])
            else:  # a branch without a normed conv of its own: number by the add, like `downsample2`
                index = graph.nodes[add].get("add_index", 0)
                path = _prefix(graph, add) + "bn_add" + (str(index + 1) if index else "")
            after = insert_after(graph, add, ops.BatchNorm(), **like(add, path=path))
            insert_after(graph, after, ops.ReLU(), **like(add))
    if order == "pre" and adds:
        last = adds[-1]
        after = insert_after(graph, last, ops.BatchNorm(), **like(last, path="bn_final", block=None, template=None))
        insert_after(graph, after, ops.ReLU(), **like(last, block=None, template=None))
    check_inserted_paths(graph, NAME)


def _prefix(graph: nx.DiGraph, node: int) -> str:
    block = graph.nodes[node]["block"]
    return block + "." if block else ""
