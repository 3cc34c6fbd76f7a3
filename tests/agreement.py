"""The check both differential tests make: IR, PyTorch module and ONNX graph agree on one network."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import torch


def assert_backends_agree(net, opsets=(None,)) -> np.ndarray:
    """Parameters equal the IR's count, and onnxruntime reproduces the module's output at each of `opsets`
    (None: the backend's default), whose graphs pass ONNX's full check; returns the output."""
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
    for opset in opsets:
        proto = net.to_onnx(weights=state) if opset is None else net.to_onnx(weights=state, opset=opset)
        onnx.checker.check_model(proto, full_check=True)
        session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4, err_msg=f"opset {opset}")
    return expected
