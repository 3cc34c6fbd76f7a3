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
from .diagnostics import ResdslError
from .registry import create_model, list_models

__version__ = "0.1.0"
__all__ = ["compile", "load", "create_model", "list_models", "Compiled", "ResdslError", "__version__"]
