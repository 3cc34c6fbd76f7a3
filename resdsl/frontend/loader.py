"""Reading spec files and resolving `use` imports into one set of block templates.

What `use` may reach: the standard library (`std/...`), `.res` files in the
compiled spec's folder and below, and `.res` files in the folders of the
search path (`--use-path DIR`, `use_path=`, and `$RESDSL_PATH`). A path is
checked after `..` and symbolic links are resolved, and a file outside those
folders is never opened, so a spec cannot make resdsl print (in an error's
source snippet) a line of a file that is not a spec. Only regular files are
read, and never more bytes than the `source_bytes` limit has left: the spec
and every file it uses share that budget.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..diagnostics import Collector, ResdslError, Source, Span, display_name, error
from ..limits import Limits
from . import ast
from .parser import parse

STD_PREFIX = "std/"
SUFFIX = ".res"
USE_PATH_VARIABLE = "RESDSL_PATH"
_REACH = (
    "`use` reads .res files in the spec's folder and below, the standard library (std/...), "
    f"and the folders of --use-path DIR and ${USE_PATH_VARIABLE}"
)


@dataclass
class Program:
    """The main file's network plus every block template visible to it."""

    module: ast.Module
    network: ast.NetworkDef
    blocks: dict[str, ast.BlockDef]
    files: list[Path] = field(default_factory=list)  # every file read, the spec first (resolved paths)


def read_source(path: str | Path, limits: Limits | None = None, used: int = 0) -> Source:
    """A spec file's text; `used` bytes of the `source_bytes` limit are already taken by other files.

    Refuses what is not a regular file (a device or a FIFO would be read without end, or
    wait for a writer) and reads at most one byte past the limit, whatever the file's size says.
    """
    path = Path(path)
    limits = limits or Limits()
    shown = display_name(str(path))
    what = f"the size of `{shown}` in bytes" + (" (with the files read before it)" if used else "")
    try:
        # Non-blocking, so that opening a FIFO cannot wait for a writer.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except IsADirectoryError:
        raise error("E0109", f"`{shown}` is a directory, not a spec file") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise error("E0109", f"cannot read `{shown}`: {reason}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise error("E0109", f"`{shown}` is a directory, not a spec file")
        if not stat.S_ISREG(info.st_mode):
            raise error("E0109", f"`{shown}` is not a regular file", help="a spec is a plain text file")
        limits.check("source_bytes", used + info.st_size, what, None)
        room = limits.source_bytes - used
        chunks: list[bytes] = []
        size = 0
        while size <= room:
            chunk = os.read(fd, min(room + 1 - size, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        limits.check("source_bytes", used + size, what, None)
    except OSError as exc:
        raise error("E0109", f"cannot read `{shown}`: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    return Source(shown, decode(b"".join(chunks), shown), path=str(path))


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


def search_path(use_path: Iterable[str | Path] | None = None) -> list[Path]:
    """The folders `use` searches after the using file's own: `use_path`, then `$RESDSL_PATH`'s."""
    folders = [Path(p) for p in use_path or ()]
    folders += [Path(p) for p in os.environ.get(USE_PATH_VARIABLE, "").split(os.pathsep) if p]
    return folders


def load(
    source: Source, base_dir: Path, limits: Limits | None = None, use_path: Iterable[str | Path] | None = None
) -> Program:
    """Parse `source` and every file it uses (transitively); exactly one network.

    `base_dir` is the spec's folder; `use` may read files below it and below the
    folders of `use_path` (and `$RESDSL_PATH`), which it also searches.
    """
    limits = limits or Limits()
    size = len(source.text.encode("utf-8", "surrogatepass"))
    limits.check("source_bytes", size, f"the size of `{source.name}` in bytes", None)
    module = parse(source)
    loader = _Loader(limits, base_dir, search_path(use_path), size)
    loader.collect(module, base_dir, _identity(source))
    loader.errors.raise_if_any()
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
    files = [Path(os.path.realpath(source.path))] if source.path else []
    return Program(module, module.networks[0], loader.blocks, files + loader.files)


def _identity(source: Source) -> str:
    """What makes two sources the same file: the standard library's name, else the resolved path."""
    if source.path is None:
        return source.name
    return os.path.realpath(source.path)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


class _Loader:
    """Follows `use` imports depth first, without recursion (a chain of thousands of files is fine)."""

    def __init__(self, limits: Limits, base_dir: Path, search: list[Path], used: int):
        self.limits = limits
        self.search = search
        self.roots = [Path(os.path.realpath(folder)) for folder in (base_dir, *search)]
        self.used = used  # bytes of source read so far, for the `source_bytes` limit
        self.blocks: dict[str, ast.BlockDef] = {}
        self.files: list[Path] = []
        self.errors = Collector()
        self.seen: set[str] = set()

    def collect(self, module: ast.Module, base_dir: Path, key: str) -> None:
        self._define(module)
        # One frame per file being followed: the uses still to follow in it, and its folder.
        # `chain` holds the files of the frames (a cycle is a use of one of them).
        stack = [(iter(module.uses), base_dir, key)]
        chain = {key}
        while stack:
            uses, folder, _ = stack[-1]
            use = next(uses, None)
            if use is None:
                chain.discard(stack.pop()[2])
                continue
            opened = self._open(use, folder, chain)
            if opened is not None:
                child, child_dir, child_key = opened
                self._define(child)
                stack.append((iter(child.uses), child_dir, child_key))
                chain.add(child_key)

    def _define(self, module: ast.Module) -> None:
        for block in module.blocks:
            if block.name.text in self.blocks:
                self.errors.add(
                    "E0104",
                    f"block `{block.name.text}` is defined twice",
                    block.name.span,
                    "second definition",
                    f"the first is at {self.blocks[block.name.text].name.span.location}",
                )
            else:
                self.blocks[block.name.text] = block

    def _open(self, use: ast.Use, folder: Path, chain: set[str]) -> tuple[ast.Module, Path, str] | None:
        """Read and parse the file `use` names, once; None when it is already read or is in error."""
        try:
            key, written, real = self._find(use, folder)
            if key in chain:
                self.errors.add(
                    "E0110", f"`use` cycle: {use.path} uses itself", use.span, "this import closes the cycle"
                )
                return None
            if key in self.seen:
                return None
            self.seen.add(key)
            source = self._std(use) if real is None else self._read(use, written, real)
            child = parse(source)
        except ResdslError as exc:
            self.errors.extend(exc)
            return None
        if child.networks:
            self.errors.add("E0111", f"`{use.path}` defines a network; `use` imports block templates only", use.span)
            return None
        # Its own uses are relative to its folder as written (not where links lead).
        return child, folder if real is None else written.parent, key

    def _find(self, use: ast.Use, folder: Path) -> tuple[str, Path, Path | None]:
        """The file `use` names: its identity, its path as written from `folder`, and its resolved
        path (None for the standard library). Raises for a file `use` may not reach or cannot find."""
        if use.path.startswith(STD_PREFIX):
            return use.path, folder, None
        if not use.path.endswith(SUFFIX):
            raise error(
                "E0125",
                f"`use` reads .res spec files only, not `{use.path}`",
                use.span,
                "not a .res file",
                _REACH,
            )
        written = Path(use.path)
        candidates = [written] if written.is_absolute() else [folder / written, *(d / written for d in self.search)]
        reachable = False
        for candidate in candidates:
            try:
                real = Path(os.path.realpath(candidate))
            except (OSError, ValueError):  # a name the OS cannot even look up (NUL bytes)
                continue
            if not any(_inside(real, root) for root in self.roots):
                continue  # never opened: not even whether it exists is revealed
            reachable = True
            try:
                is_dir, is_file = real.is_dir(), real.exists()
            except (OSError, ValueError):  # too long a name
                is_dir = is_file = False
            if is_dir:
                raise error("E0109", f"`{use.path}` is a directory, not a spec file", use.span, "a directory")
            if is_file:
                return str(real), candidate, real
        if not reachable:
            raise error(
                "E0125",
                f"`{use.path}` is outside the folders `use` may read",
                use.span,
                "outside the spec's folder tree",
                _REACH,
            )
        raise error(
            "E0109",
            f"cannot find `{use.path}`",
            use.span,
            "file not found",
            "a path in `use` is relative to the file that uses it; `std/...` names the standard library",
        )

    def _read(self, use: ast.Use, written: Path, real: Path) -> Source:
        try:
            source = read_source(real, self.limits, self.used)
        except ResdslError as exc:  # point at the `use` that asked for the file
            for diag in exc.diagnostics:
                diag.span = diag.span or use.span
            raise
        self.used += len(source.text.encode("utf-8", "surrogatepass"))
        self.files.append(real)
        return Source(display_name(str(written)), source.text, path=str(real))

    def _std(self, use: ast.Use) -> Source:
        name = use.path[len(STD_PREFIX) :]
        library = resources.files("resdsl").joinpath("std")
        try:
            ref = library.joinpath(name)
            found = "/" not in name and "\\" not in name and not name.startswith(".") and ref.is_file()
        except (OSError, ValueError):  # a name too long for the OS
            found = False
        if not found:
            available = sorted(p.name for p in library.iterdir())
            raise error(
                "E0109",
                f"no standard library file `{use.path}`",
                use.span,
                "not found",
                "the standard library has " + ", ".join(f"std/{a}" for a in available),
            )
        text = ref.read_text(encoding="utf-8")
        self.used += len(text.encode("utf-8"))
        self.limits.check("source_bytes", self.used, "the size of the spec with the files it uses", use.span)
        return Source(use.path, text)
