"""Lark's LALR tables, built once per grammar and kept in the user's cache folder.

Building the tables from grammar.lark takes longer than the rest of `resdsl
check` on a ResNet-152; loading them takes a few milliseconds. The file's
name holds a hash of everything the tables depend on (the grammar, the
options, the Lark and Python versions), so an edited grammar or an upgraded
Lark never meets stale tables. The cache is an optimisation only: any
failure to read or write it falls back to building the parser.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import sys
from pathlib import Path

import lark
from lark import Lark


def cache_dir() -> Path:
    """`$RESDSL_CACHE_DIR`, else `$XDG_CACHE_HOME/resdsl`, else `~/.cache/resdsl`."""
    if os.environ.get("RESDSL_CACHE_DIR"):
        return Path(os.environ["RESDSL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "resdsl"


def cache_path(grammar: str, options: dict) -> Path:
    key = repr((grammar, sorted(options.items()), lark.__version__, sys.version_info[:2]))
    return cache_dir() / f"parser-{hashlib.sha256(key.encode('utf-8')).hexdigest()[:24]}.pickle"


def load_or_build(grammar: str, **options) -> Lark:
    """A Lark LALR parser for `grammar`, from the cache when it holds one."""
    path = cache_path(grammar, options)
    try:
        with open(path, "rb") as handle:
            return Lark.load(handle)
    except Exception:  # noqa: BLE001 - missing, unreadable or corrupt: rebuild below
        pass
    parser = Lark(grammar, parser="lalr", **options)
    try:
        from ..io import write_atomic

        buffer = io.BytesIO()
        parser.save(buffer)
        write_atomic(path, buffer.getvalue())
    except (OSError, pickle.PicklingError):
        pass  # a read-only home: every run builds the tables
    return parser
