"""Differential tests: the IR, the generated PyTorch module and the ONNX graph agree.

Each spec in tests/data/tricky/ once broke one backend (a name clash, an
argument written in the wrong terms, a duplicate inserted path). For each,
the module's parameter count must equal the IR's, and onnxruntime must give
the module's outputs with the module's own weights.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from agreement import assert_backends_agree

import resdsl

TRICKY = sorted((Path(__file__).parent / "data" / "tricky").glob("*.res"))


@pytest.mark.parametrize("spec", TRICKY, ids=lambda p: p.stem)
def test_torch_onnx_and_ir_agree(spec):
    assert_backends_agree(resdsl.compile(spec))
