"""A model registry in the manner of timm: the bundled specs by name."""

from __future__ import annotations

import difflib
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING

from .api import compile as compile_spec
from .diagnostics import ResdslError, Source, error
from .extras import require

if TYPE_CHECKING:
    import torch

__all__ = ["create_model", "is_model_name", "list_models", "spec_source"]


def _zoo() -> Traversable:
    return resources.files("resdsl").joinpath("specs")


def list_models(pattern: str = "*") -> list[str]:
    """Names of the specs shipped with resdsl, sorted; `pattern` is a glob such as `cifar_*`."""
    import fnmatch

    names = [entry.name.removesuffix(".res") for entry in _zoo().iterdir() if entry.name.endswith(".res")]
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def is_model_name(text: str | Path) -> bool:
    """Whether `text` names a bundled model rather than a file: no `.res` suffix, no folder, no such file."""
    path = Path(text)
    return path.suffix != ".res" and len(path.parts) == 1 and not path.exists()


def spec_source(name_or_path: str | Path) -> Source:
    """The text of a bundled spec by name, or of a spec file by path (raises ResdslError E0119/E0109)."""
    if not is_model_name(name_or_path):
        from .frontend.loader import read_source

        return read_source(name_or_path)
    entry = _zoo().joinpath(f"{name_or_path}.res")
    if not entry.is_file():
        close = difflib.get_close_matches(str(name_or_path), list_models(), n=1)
        raise error(
            "E0119",
            f"no bundled model `{name_or_path}`",
            help=f"did you mean `{close[0]}`?"
            if close
            else "a spec file's name ends in .res; the bundled models are " + ", ".join(list_models()),
        )
    return Source(f"{name_or_path}.res", entry.read_text(encoding="utf-8"))


def create_model(
    name_or_path: str | Path,
    num_classes: int | None = None,
    in_chans: int | None = None,
    *,
    features_only: bool = False,
    out_indices: tuple[int, ...] | None = None,
    checkpoint_path: str | Path | None = None,
    **overrides: object,
) -> torch.nn.Module:
    """Build an nn.Module from a bundled spec name or a .res path, as timm's create_model (needs `resdsl[torch]`).

    `num_classes` and `in_chans` override the spec's `classes` and input
    channels; other keyword arguments are its settings, as `--set` takes them:
    policies (`norm="pre"`, `zero_init_last=True`), `input=(3, 64, 64)` or
    `"3x64x64"`, and the network's `let`s. `features_only=True` gives the
    network without its head, returning the feature maps at `out_indices`
    (all of them by default; `model.feature_info` says their channels and
    reductions). `checkpoint_path` loads a local state_dict (torchvision's
    or timm's keys, or a checkpoint holding one under `state_dict`/`model`)
    with `strict=True`. Raises ResdslError for a mistake in the spec or a bad
    value, TypeError for an unknown keyword argument. resdsl ships no weights
    (see `pretrained` in the message when it is asked for).
    """
    require("create_model()", ("torch",), "torch")
    if overrides.pop("pretrained", False):
        raise ValueError(
            "create_model(pretrained=True): resdsl ships no weights. Pass a local checkpoint instead: "
            "create_model(name, checkpoint_path='weights.pth'); the generated modules use torchvision's and "
            "timm's keys, so their ResNet checkpoints load with strict=True"
        )
    source = spec_source(name_or_path)
    _check_keywords(source, overrides)
    settings = {key: _setting_text(value) for key, value in overrides.items()}
    if num_classes is not None:
        settings["classes"] = str(num_classes)
    if in_chans is not None:
        settings["in_channels"] = str(in_chans)
    compiled = compile_spec(source, settings)
    if features_only:
        module = compiled.features(out_indices)
    else:
        module = compiled.to_torch()
    if checkpoint_path is not None:
        load_checkpoint(module, checkpoint_path)
    return module


def load_checkpoint(module: torch.nn.Module, path: str | Path) -> None:
    """Load the state_dict at `path` into `module` strictly (a features-only module skips the head's keys)."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    expected = module.state_dict()
    if hasattr(module, "out_indices"):  # features_only: the checkpoint's head has nowhere to go
        state = {k: v for k, v in state.items() if k in expected}
    module.load_state_dict(state, strict=True)


def _setting_text(value: object) -> str:
    """A Python value as `--set` spells it: booleans lower-case, a shape tuple as `3x64x64`."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (tuple, list)):
        return "x".join(str(v) for v in value)
    return str(value)


def _check_keywords(source: Source, overrides: dict[str, object]) -> None:
    """Refuse keyword arguments the spec has no setting for, as Python refuses an unknown argument."""
    from .frontend.lower import setting_names
    from .frontend.parser import parse

    try:
        networks = parse(source).networks
    except ResdslError:
        return  # compiling reports the spec's own mistakes
    if not networks:
        return
    names = setting_names(networks[0])
    for key in overrides:
        if key not in names:
            close = difflib.get_close_matches(key, [*names, "num_classes", "in_chans", "pretrained"], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TypeError(
                f"create_model() got an unexpected keyword argument {key!r}{hint} "
                f"(it takes num_classes, in_chans and the settings of `{networks[0].name.text}`: "
                f"{', '.join(sorted(names))})"
            )
