"""Compiling without the cyclic garbage collector's full passes.

Building an IR allocates tens of thousands of long-lived objects (nodes,
modules, edge dicts) and almost no garbage. Each allocation counts towards a
collection, and the collector's older generations sweep the whole growing
heap: at 10,000 blocks that sweeping was about a third of the compile. Turned
off for the compile, it runs again afterwards and frees any cycles then.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def paused(function: Callable[P, R]) -> Callable[P, R]:
    """`function` run with the cyclic collector off (unless the caller had turned it off already)."""

    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        if not gc.isenabled():
            return function(*args, **kwargs)
        gc.disable()
        try:
            return function(*args, **kwargs)
        finally:
            gc.enable()

    return run
