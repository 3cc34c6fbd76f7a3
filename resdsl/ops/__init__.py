"""The op kinds: one module per kind (or family) in this folder, each defining its ops completely.

`KINDS` maps each kind to its class, `SPEC_OPS` the kinds a spec can call.
Every Op subclass with a `kind` in a module of this folder is found here, so
adding an op is adding its file (docs/internals.md walks through one).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from .base import REQUIRED, ArgSpec, Op, Range, Signature, StateEntry

_HELPERS = {"activation", "base", "window"}  # modules of shared code, not op definitions


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


def make(kind: str, values: dict[str, Any] | None = None) -> Op:
    """An op of `kind` with the arguments `values` and its signature's defaults for the rest
    (what a policy places: `policy attn = se(rd_ratio=0.25)`)."""
    cls = KINDS[kind]
    assert cls.signature is not None, kind
    given = dict(values or {})
    full = {spec.name: given.pop(spec.name, spec.default) for spec in cls.signature.args}
    full.update(given)  # what the placing pass fills in (an aa pool's stride)
    cls.complete(full, {}, None)  # type: ignore[arg-type]  # no expressions: no span is needed
    for name in cls.signature.node_args:
        full.pop(name, None)
    return cls(**full)


# The ops a spec calls by name, in the order help texts list them.
SPEC_OPS: dict[str, type[Op]] = {kind: cls for kind, cls in KINDS.items() if cls.signature is not None}

__all__ = ["KINDS", "SPEC_OPS", "Op", "ArgSpec", "Signature", "StateEntry", "REQUIRED", "Range"]
