"""The pass pipeline: each pass transforms the IR, and the IR is verified after each."""

from __future__ import annotations

import networkx as nx

from ..ir.graph import verify
from . import budget, norm, projections, shapes, validate, zero_init

PIPELINE = (norm, shapes, projections, zero_init, budget, validate)


def run(graph: nx.DiGraph) -> nx.DiGraph:
    verify(graph, after="lowering")
    for step in PIPELINE:
        step.apply(graph)
        verify(graph, after=step.NAME)
    return graph
