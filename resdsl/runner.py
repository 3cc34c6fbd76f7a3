"""Run an ONNX model with onnxruntime, for people without PyTorch (`resdsl run`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class RunError(Exception):
    """A model or input the runner cannot use; the message says why."""


DEVICES = ("auto", "cpu", "cuda")
# The input types run can feed, as onnxruntime names them, and the array type each takes.
FLOAT_INPUTS = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


def providers(device: str = "auto") -> list[str]:
    """The execution providers for `device`: `auto` takes CUDA when this onnxruntime has it, else the CPU."""
    import onnxruntime as ort

    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if device == "cuda" and not has_cuda:
        raise RunError("--device cuda: this onnxruntime has no CUDA provider (install onnxruntime-gpu)")
    if device == "cuda" or (device == "auto" and has_cuda):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]  # CPU only for nodes CUDA cannot run
    return ["CPUExecutionProvider"]


def session(model: str | Path, device: str = "auto"):
    import onnxruntime as ort

    if not Path(model).is_file():
        raise RunError(f"model {model} does not exist")
    chosen = providers(device)
    try:
        return ort.InferenceSession(str(model), providers=chosen)
    except Exception as exc:  # noqa: BLE001 - onnxruntime reports a bad file as a generic failure
        raise RunError(f"onnxruntime cannot load {model}: {exc}") from None


def run(model: str | Path, batch: np.ndarray, device: str = "auto") -> tuple[np.ndarray, str]:
    """The model's first output on `batch` (N×C×H×W, or one C×H×W image), and the provider that ran it."""
    outputs, provider = run_all(model, batch, device)
    return next(iter(outputs.values())), provider


def run_all(model: str | Path, batch: np.ndarray, device: str = "auto") -> tuple[dict[str, np.ndarray], str]:
    """Every output of the model on `batch`, by name in the graph's order (a feature pyramid's P2…P5), and
    the provider that ran it."""
    sess = session(model, device)
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        raise RunError(f"the model has {len(inputs)} inputs; resdsl run feeds a model with one")
    (entry,) = inputs
    dtype = FLOAT_INPUTS.get(entry.type)
    if dtype is None:
        held = entry.type.removeprefix("tensor(").removesuffix(")")
        raise RunError(f"the model's input `{entry.name}` holds {held}; resdsl run feeds floating point arrays")
    batch = np.asarray(batch)
    if not np.issubdtype(batch.dtype, np.floating):
        raise RunError(f"the input holds {batch.dtype}; the model needs floating point")
    expected = entry.shape  # e.g. ['batch', 3, 224, 224]
    if batch.ndim == len(expected) - 1:
        batch = batch[None]
    fixed = [d if isinstance(d, int) else None for d in expected]
    if batch.ndim != len(expected) or any(f is not None and f != d for f, d in zip(fixed, batch.shape, strict=True)):
        want = "x".join(str(d) if isinstance(d, int) else "N" for d in expected)
        raise RunError(f"the input is {'x'.join(map(str, batch.shape))}; the model needs {want}")
    try:
        arrays = sess.run(None, {entry.name: batch.astype(dtype)})
    except Exception as exc:  # noqa: BLE001 - onnxruntime reports a model it cannot run as a generic failure
        raise RunError(f"onnxruntime could not run {Path(model).name}: {exc}") from None
    names = [output.name for output in sess.get_outputs()]
    return dict(zip(names, arrays, strict=True)), sess.get_providers()[0]
