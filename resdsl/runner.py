"""Run an ONNX model with onnxruntime, for people without PyTorch (`resdsl run`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class RunError(Exception):
    """A model or input the runner cannot use; the message says why."""


def providers() -> list[str]:
    """CUDA when this onnxruntime build has it (falling back to CPU per node), else CPU."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def session(model: str | Path):
    import onnxruntime as ort

    if not Path(model).is_file():
        raise RunError(f"model {model} does not exist")
    try:
        return ort.InferenceSession(str(model), providers=providers())
    except Exception as exc:  # noqa: BLE001 - onnxruntime reports a bad file as a generic failure
        raise RunError(f"onnxruntime cannot load {model}: {exc}") from None


def run(model: str | Path, batch: np.ndarray) -> tuple[np.ndarray, str]:
    """The model's first output on `batch` (N×C×H×W, or one C×H×W image), and the provider that ran it."""
    sess = session(model)
    (entry,) = sess.get_inputs()
    batch = np.asarray(batch)
    if not np.issubdtype(batch.dtype, np.floating):
        raise RunError(f"the input holds {batch.dtype}; the model needs floating point")
    expected = entry.shape  # e.g. ['batch', 3, 224, 224]
    if batch.ndim == len(expected) - 1:
        batch = batch[None]
    fixed = [d if isinstance(d, int) else None for d in expected]
    if batch.ndim != len(expected) or any(f is not None and f != d for f, d in zip(fixed, batch.shape)):
        want = "x".join(str(d) if isinstance(d, int) else "N" for d in expected)
        raise RunError(f"the input is {'x'.join(map(str, batch.shape))}; the model needs {want}")
    (output,) = sess.run(None, {entry.name: batch.astype(np.float32)})[:1]
    return output, sess.get_providers()[0]
