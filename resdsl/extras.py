"""Optional packages: a missing one is named with the extra that installs it, never a bare ModuleNotFoundError.

resdsl needs only lark and networkx; PyTorch output needs `resdsl[torch]`,
ONNX output and `resdsl run` need `resdsl[onnx]`. Each feature checks what it
needs before it starts, without importing anything.
"""

from __future__ import annotations

import importlib.util


class MissingDependency(ImportError):
    """A feature needs an optional package that is not installed; the message says how to install it."""


def require(feature: str, modules: tuple[str, ...], extra: str | None = None) -> None:
    """Raise MissingDependency unless every top-level module in `modules` can be imported.

    The hint installs `resdsl[extra]`, or the missing packages themselves
    when no extra carries them.
    """
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if not missing:
        return
    packages = " and ".join(missing)
    plural = len(missing) > 1
    install = f"pip install 'resdsl[{extra}]'" if extra else "pip install " + " ".join(missing)
    raise MissingDependency(
        f"{feature} needs the Python package{'s' * plural} {packages}, which {'are' if plural else 'is'} "
        f"not installed: {install}",
        name=missing[0],
    )
