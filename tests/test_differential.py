"""Differential tests: the IR, the generated PyTorch module and the ONNX graph agree.

Each spec in tests/data/tricky/ once broke one backend (a name clash, an
argument written in the wrong terms, a duplicate inserted path). For each,
the module's parameter count must equal the IR's, and onnxruntime must give
the module's outputs with the module's own weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

import resdsl

TRICKY = sorted((Path(__file__).parent / "data" / "tricky").glob("*.res"))


@pytest.mark.parametrize("spec", TRICKY, ids=lambda p: p.stem)
def test_torch_onnx_and_ir_agree(spec):
    net = resdsl.compile(spec)
    torch.manual_seed(0)
    model = net.to_torch().eval()
    assert sum(p.numel() for p in model.parameters()) == net.params
    with torch.no_grad():  # non-trivial BatchNorm statistics, so that every op matters
        for name, buffer in model.named_buffers():
            if name.endswith("running_var"):
                buffer.uniform_(0.5, 1.5)
            elif name.endswith("running_mean"):
                buffer.uniform_(-0.2, 0.2)
    x = torch.randn(2, *net.input_shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x).numpy()
    state = {k: v.numpy() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    proto = net.to_onnx(weights=state)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
