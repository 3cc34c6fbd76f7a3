"""Atomic output: a failed or interrupted write never leaves a truncated file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def write_atomic(path: str | Path, data: str | bytes | Iterable[bytes | memoryview]) -> None:
    """Write to a temporary file in the target's folder, then rename it over the target.

    `data` may be a sequence of byte chunks, written one after the other
    (large outputs need not be joined in memory first).
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    chunks = [payload] if isinstance(payload, (bytes, bytearray, memoryview)) else payload
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.writelines(chunks)
            handle.flush()
            os.fsync(handle.fileno())
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
