"""A model registry in the manner of timm: the bundled specs by name."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .api import compile as compile_spec
from .diagnostics import Source, error


def _zoo():
    return resources.files("resdsl").joinpath("specs")


def list_models(pattern: str = "*") -> list[str]:
    """Names of the specs shipped with resdsl, sorted; `pattern` is a glob such as `cifar_*`."""
    import fnmatch

    names = [entry.name.removesuffix(".res") for entry in _zoo().iterdir() if entry.name.endswith(".res")]
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def spec_source(name_or_path: str | Path) -> Source:
    """The text of a bundled spec by name, or of a spec file by path."""
    path = Path(name_or_path)
    if path.suffix == ".res" or path.exists():
        from .frontend.loader import read_source

        return read_source(path)
    entry = _zoo().joinpath(f"{name_or_path}.res")
    if not entry.is_file():
        import difflib

        close = difflib.get_close_matches(str(name_or_path), list_models(), n=1)
        raise error(
            "E0119",
            f"no bundled model `{name_or_path}`",
            help=f"did you mean `{close[0]}`?" if close else "resdsl.list_models() lists them",
        )
    return Source(f"{name_or_path}.res", entry.read_text(encoding="utf-8"))


def create_model(name_or_path: str | Path, num_classes: int | None = None, in_chans: int | None = None, **overrides):
    """Build an nn.Module from a bundled spec name or a .res path.

    `num_classes` and `in_chans` override the spec's `classes` and input
    channels; other keyword arguments are `--set` overrides (`norm="pre"`,
    `shortcut="A"`, or any network `let`).
    """
    settings = {key: str(value) for key, value in overrides.items()}
    if num_classes is not None:
        settings["classes"] = str(num_classes)
    if in_chans is not None:
        settings["in_channels"] = str(in_chans)
    return compile_spec(spec_source(name_or_path), settings).to_torch()
