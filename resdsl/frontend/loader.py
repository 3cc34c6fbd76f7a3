"""Reading spec files and resolving `use` imports into one set of block templates."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..diagnostics import Collector, ResdslError, Source, Span, error
from . import ast
from .parser import parse

STD_PREFIX = "std/"


@dataclass
class Program:
    """The main file's network plus every block template visible to it."""

    module: ast.Module
    network: ast.NetworkDef
    blocks: dict[str, ast.BlockDef]


def read_source(path: str | Path) -> Source:
    path = Path(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise error("E0109", f"`{path}` is a directory, not a spec file") from None
    except OSError as exc:
        raise error("E0109", f"cannot read `{path}`: {exc.strerror or exc}") from None
    return Source(str(path), decode(data, str(path)))


def decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        source = Source(name, data.decode("utf-8", errors="replace"))
        raise error(
            "E0006",
            "the file is not valid UTF-8 text",
            Span(source, exc.start, exc.start + 1),
            "this byte is not UTF-8",
            "spec files are plain UTF-8 text",
        ) from None


def load(source: Source, base_dir: Path) -> Program:
    """Parse `source` and every file it uses (transitively); exactly one network."""
    module = parse(source)
    blocks: dict[str, ast.BlockDef] = {}
    errors = Collector()
    _collect(module, base_dir, blocks, errors, stack=[_identity(source.name)], seen=set())
    errors.raise_if_any()
    if not module.networks:
        end = len(source.text)
        raise error(
            "E0004",
            "the spec defines no network",
            Span(source, 0, end) if source.text.strip() else Span(source, 0, 0),
            "",
            "write `network NAME { input 3x224x224 ... }`",
        )
    if len(module.networks) > 1:
        extra = module.networks[1]
        raise error(
            "E0007",
            "a spec file defines exactly one network",
            extra.name.span,
            "second network",
            "move the other network to its own file and `use` shared blocks",
        )
    return Program(module, module.networks[0], blocks)


def _identity(name: str) -> str:
    return name if name.startswith(STD_PREFIX) else str(Path(name).resolve()) if name != "<text>" else name


def _collect(module: ast.Module, base_dir: Path, blocks, errors: Collector, stack: list[str], seen: set) -> None:
    for block in module.blocks:
        if block.name.text in blocks:
            errors.add(
                "E0104",
                f"block `{block.name.text}` is defined twice",
                block.name.span,
                "second definition",
                f"the first is at {blocks[block.name.text].name.span.location}",
            )
        else:
            blocks[block.name.text] = block
    for use in module.uses:
        try:
            source, child_dir = _resolve(use, base_dir)
        except ResdslError as exc:
            errors.extend(exc)
            continue
        key = _identity(source.name)
        if key in stack:
            errors.add("E0110", f"`use` cycle: {use.path} uses itself", use.span, "this import closes the cycle")
            continue
        if key in seen:
            continue
        seen.add(key)
        try:
            child = parse(source)
        except ResdslError as exc:
            errors.extend(exc)
            continue
        if child.networks:
            errors.add(
                "E0111",
                f"`{use.path}` defines a network; `use` imports block templates only",
                use.span,
            )
            continue
        _collect(child, child_dir, blocks, errors, stack + [key], seen)


def _resolve(use: ast.Use, base_dir: Path) -> tuple[Source, Path]:
    if use.path.startswith(STD_PREFIX):
        ref = resources.files("resdsl").joinpath(use.path)
        if not ref.is_file():
            available = sorted(p.name for p in resources.files("resdsl").joinpath("std").iterdir())
            raise error(
                "E0109",
                f"no standard library file `{use.path}`",
                use.span,
                "not found",
                "the standard library has " + ", ".join(f"std/{a}" for a in available),
            )
        return Source(use.path, ref.read_text(encoding="utf-8")), base_dir
    path = base_dir / use.path
    if path.is_dir():
        raise error("E0109", f"`{use.path}` is a directory, not a spec file", use.span, "a directory")
    if not path.is_file():
        raise error(
            "E0109",
            f"cannot find `{use.path}`",
            use.span,
            "file not found",
            "a path in `use` is relative to the file that uses it; `std/...` names the standard library",
        )
    source = read_source(path)
    return source, path.parent
