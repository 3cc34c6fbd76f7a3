"""resdsl: a declarative compiler for residual networks.

    import resdsl
    net = resdsl.compile("specs/resnet50.res")
    model = net.to_torch()          # an nn.Module
    print(net.torch_source)         # standalone PyTorch source

Importing resdsl never imports torch or onnx; only the backends that need
them do, when called.
"""

from __future__ import annotations

from .api import Compiled, compile, load
from .diagnostics import ResdslError, ResdslWarning
from .extras import MissingDependency
from .registry import create_model, list_models

__version__ = "0.1.0"  # the one place the version is written: pyproject.toml reads it from here
__all__ = [
    "compile",
    "load",
    "create_model",
    "list_models",
    "Compiled",
    "ResdslError",
    "ResdslWarning",
    "MissingDependency",
    "__version__",
]
