"""Performance properties that cannot flake. Timings themselves live in bench/ and docs/benchmarks.md.

(`resdsl check` not importing torch is guarded in test_cli.py.)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import networkx as nx
import pytest
from conftest import ROOT, SPEC_SAMPLE

import resdsl

sys.path.insert(0, str(ROOT / "bench"))
from specs import cifar_spec  # noqa: E402


def _best_of(text: str, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        _ = resdsl.compile(text).torch_source  # writing the source is part of what is timed
        best = min(best, time.perf_counter() - start)
    return best


def test_compiling_ten_times_more_blocks_takes_less_than_thirty_times_longer():
    small, large = cifar_spec(100), cifar_spec(1000)
    resdsl.compile(small)  # imports and parser tables are not part of the comparison
    # Linear compile time gives about 10×; a quadratic step anywhere would give about 100×.
    assert _best_of(large, 2) < 30 * _best_of(small, 3)


def test_generated_spec_has_the_blocks_it_says():
    net = resdsl.compile(cifar_spec(1000))
    assert sum(len(t.instances) for t in net.ir.templates.values()) == 1000
    # 1000 basic blocks over three stages of 16, 32 and 64 channels: the spec grows as it claims.
    assert net.params > 50 * resdsl.compile(cifar_spec(10)).params


@pytest.mark.parametrize("spec", SPEC_SAMPLE, ids=lambda p: p.stem)
@pytest.mark.parametrize("norm", ["post", "pre", "bn_after_add"])
def test_walk_is_networkx_lexicographical_topological_order(spec: Path, norm: str):
    ir = resdsl.compile(spec, {"norm": norm, "shortcut": "C"}).ir
    assert ir.walk() == list(nx.lexicographical_topological_sort(ir.graph, key=lambda n: n.id))
