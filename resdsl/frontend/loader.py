"""Reading spec files and resolving `use` imports into one set of block templates."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..diagnostics import Collector, ResdslError, Source, Span, error
from ..limits import Limits
from . import ast
from .parser import parse

STD_PREFIX = "std/"


@dataclass
class Program:
    """The main file's network plus every block template visible to it."""

    module: ast.Module
    network: ast.NetworkDef
    blocks: dict[str, ast.BlockDef]


def read_source(path: str | Path, limits: Limits | None = None) -> Source:
    path = Path(path)
    limits = limits or Limits()
    try:
        # Checked before reading, so a huge file is refused without loading it.
        limits.check("source_bytes", path.stat().st_size, f"the size of `{path}` in bytes", None)
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
        # Spans count characters of the decoded text, not bytes.
        offset = len(data[: exc.start].decode("utf-8", errors="replace"))
        raise error(
            "E0006",
            "the file is not valid UTF-8 text",
            Span(source, offset, offset + 1),
            "this byte is not UTF-8",
            "spec files are plain UTF-8 text",
        ) from None


def load(source: Source, base_dir: Path, limits: Limits | None = None) -> Program:
    """Parse `source` and every file it uses (transitively); exactly one network."""
    limits = limits or Limits()
    limits.check(
        "source_bytes", len(source.text.encode("utf-8", "surrogatepass")), f"the size of `{source.name}` in bytes", None
    )
    module = parse(source)
    blocks: dict[str, ast.BlockDef] = {}
    errors = Collector()
    _collect(module, base_dir, blocks, errors, stack=[_identity(source.name)], seen=set(), limits=limits)
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


def _collect(
    module: ast.Module, base_dir: Path, blocks, errors: Collector, stack: list[str], seen: set, limits: Limits
) -> None:
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
            source, child_dir = _resolve(use, base_dir, limits)
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
        _collect(child, child_dir, blocks, errors, stack + [key], seen, limits)


def _resolve(use: ast.Use, base_dir: Path, limits: Limits) -> tuple[Source, Path]:
    if use.path.startswith(STD_PREFIX):
        name = use.path[len(STD_PREFIX) :]
        ref = resources.files("resdsl").joinpath("std", name)
        if "/" in name or "\\" in name or name.startswith(".") or not ref.is_file():
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
    try:
        is_dir, is_file = path.is_dir(), path.is_file()
    except (OSError, ValueError):  # a name the OS cannot even look up (too long, NUL bytes)
        is_dir = is_file = False
    if is_dir:
        raise error("E0109", f"`{use.path}` is a directory, not a spec file", use.span, "a directory")
    if not is_file:
        raise error(
            "E0109",
            f"cannot find `{use.path}`",
            use.span,
            "file not found",
            "a path in `use` is relative to the file that uses it; `std/...` names the standard library",
        )
    try:
        source = read_source(path, limits)
    except ResdslError as exc:  # point at the `use` that asked for the file
        for diag in exc.diagnostics:
            diag.span = diag.span or use.span
        raise
    return source, path.parent
