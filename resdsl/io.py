"""Atomic output: a failed or interrupted write never leaves a truncated file, nor (but for SIGKILL) a temporary.

The data goes to a temporary file beside the target, named
`.TARGET.resdsl.HOST.PID.RANDOM.tmp`, which is renamed over the target once
complete. An exception, Ctrl-C, SIGTERM or SIGHUP removes the temporary; a
writer killed outright leaves it behind, and the next write to the same target
on the same machine removes it once its process is gone.
"""

from __future__ import annotations

import glob
import os
import signal
import socket
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

# Signals that end a process whose temporary we remove first (SIGINT is KeyboardInterrupt already).
_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def write_atomic(path: str | Path, data: str | bytes | Iterable[bytes | memoryview]) -> None:
    """Write to a temporary file in the target's folder, then rename it over the target.

    `data` may be a sequence of byte chunks, written one after the other
    (large outputs need not be joined in memory first). A symbolic link is
    written through: the file it points to is replaced, the link kept.
    """
    path = Path(os.path.realpath(path))
    payload = data.encode("utf-8") if isinstance(data, str) else data
    chunks = [payload] if isinstance(payload, (bytes, bytearray, memoryview)) else payload
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale(folder, path.name)
    with _signals_raise():
        fd, tmp = tempfile.mkstemp(prefix=_prefix(path.name), suffix=".tmp", dir=folder)
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


def _host() -> str:
    return socket.gethostname().split(".")[0] or "host"


def _prefix(name: str, pid: int | None = None) -> str:
    return f".{name}.resdsl.{_host()}.{os.getpid() if pid is None else pid}."


def _remove_stale(folder: Path, name: str) -> None:
    """Remove temporaries for `name` left by writers on this machine whose process has ended."""
    if os.name != "posix":  # no safe way to ask whether a process lives
        return
    start = f".{name}.resdsl.{_host()}."
    for tmp in glob.glob(glob.escape(str(folder / start)) + "*.tmp"):
        pid_text = Path(tmp).name[len(start) :].split(".", 1)[0]
        if pid_text.isdigit() and not _alive(int(pid_text)):
            Path(tmp).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


class _Terminated(BaseException):
    """A terminating signal arrived during a write."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextmanager
def _signals_raise() -> Iterator[None]:
    """While writing, turn SIGTERM and SIGHUP into an exception, so the temporary is removed;
    then let the signal end the process as it would have.

    Only signals left at their default action are taken over, and only in the main
    thread (the only one Python lets set handlers): an ignored SIGHUP stays ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise _Terminated(signum)

    taken = [s for s in _SIGNALS if signal.getsignal(s) is signal.SIG_DFL]
    for signum in taken:
        signal.signal(signum, handler)
    try:
        yield
    except _Terminated as exc:
        for signum in taken:
            signal.signal(signum, signal.SIG_DFL)
        taken = []
        signal.raise_signal(exc.signum)  # the default action: the process ends here
        raise
    finally:
        for signum in taken:
            signal.signal(signum, signal.SIG_DFL)
