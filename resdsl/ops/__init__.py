"""The op kinds: one module per kind (or family) in this folder, each defining its ops completely.

`KINDS` maps each kind to its class, `SPEC_OPS` the kinds a spec can call.
Every Op subclass with a `kind` in a module of this folder is found here, so
adding an op is adding its file (docs/internals.md walks through one).
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import REQUIRED, ArgSpec, Op, Signature, StateEntry

_HELPERS = {"base", "window"}  # modules of shared code, not op definitions


def _discover() -> dict[str, type[Op]]:
    kinds: dict[str, type[Op]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name in _HELPERS:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Op) and value.kind and value.__module__ == module.__name__:
                if value.kind in kinds:
                    raise RuntimeError(f"op kind {value.kind!r} is defined twice")
                kinds[value.kind] = value
    return kinds


KINDS: dict[str, type[Op]] = _discover()
# The ops a spec calls by name, in the order help texts list them.
SPEC_OPS: dict[str, type[Op]] = {kind: cls for kind, cls in KINDS.items() if cls.signature is not None}

__all__ = ["KINDS", "SPEC_OPS", "Op", "ArgSpec", "Signature", "StateEntry", "REQUIRED"]
