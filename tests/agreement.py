"""The check both differential tests make: IR, PyTorch module and ONNX graph agree on one network."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import torch


def assert_backends_agree(net) -> np.ndarray:
    """Parameters equal the IR's count, and onnxruntime reproduces the module's output; returns it."""
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
        expected = model(x).numpy()
    state = {k: v.numpy() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    session = ort.InferenceSession(net.to_onnx(weights=state).SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
    return expected
