"""Read the tensors of a PyTorch `.pt`/`.pth` file without PyTorch, running none of the file's code.

torch.save (since PyTorch 1.6) writes a zip archive: `<name>/data.pkl`, a
pickle of the saved object in which every tensor names a storage by key, and
the storages' raw bytes, uncompressed, as `<name>/data/<key>`.

Unpickling runs whatever code a pickle names, so this module never hands the
file to `pickle`: it interprets the opcodes itself and builds only dicts,
lists, tuples, strings, bytes, numbers, booleans, None and `Tensor`
references. The few globals torch.save writes for tensors and state dicts
(`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`,
`torch._utils._rebuild_parameter`, `torch.FloatStorage`, ...) are stand-ins
defined here; any other global, and any opcode outside the set below, makes
the file unreadable (`TorchFileError`) before anything of it runs.

A `Tensor` knows its shape and dtype; its values are read from the archive
only by `Tensor.read()`, one tensor at a time, so a caller can stream a
large checkpoint through a small amount of memory. Storages of float32,
float64, float16, bfloat16 (read as float32: NumPy has no bfloat16), int64,
int32, int16, int8, uint8 and bool are read; any other dtype (complex,
quantized, float8) is refused with its name. PyTorch's legacy format (before
1.6, or `_use_new_zipfile_serialization=False`) and TorchScript archives are
refused with a message saying so.
"""

from __future__ import annotations

import math
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Tensor", "TorchFileError", "load"]


class TorchFileError(ValueError):
    """The file is not one this reader accepts; the message says why, for the user."""


# torch.save's storage classes, as the pickle names them, and the NumPy dtype of their bytes.
STORAGES = {
    "FloatStorage": "f4",
    "DoubleStorage": "f8",
    "HalfStorage": "f2",
    "BFloat16Storage": "u2",  # widened to float32 by Tensor.read
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}
BFLOAT16 = "BFloat16Storage"

# The magic number that starts a file in PyTorch's legacy format (a pickled long, protocol 2).
LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"

MAX_PICKLE_BYTES = 256 * 2**20  # a state dict's pickle is kilobytes; this bounds what a hostile one costs


@dataclass(frozen=True)
class _Storage:
    """One storage of the archive: where its bytes lie in the file."""

    path: Path
    member: str
    start: int  # file offset of the first byte (uncompressed members), else -1
    numel: int
    kind: str  # a STORAGES key
    dtype: np.dtype  # of the stored bytes, with the archive's byte order


@dataclass(frozen=True, eq=False)
class Tensor:
    """A tensor in the file: its shape and dtype now, its values when `read()`."""

    shape: tuple[int, ...]
    dtype: str  # the NumPy dtype name `read()` returns
    storage: _Storage
    offset: int  # in elements of the storage
    stride: tuple[int, ...]

    def read(self) -> np.ndarray:
        """The tensor's values as a fresh, C-contiguous NumPy array in native byte order."""
        storage, count = self.storage, math.prod(self.shape)
        if count == 0:
            return np.empty(self.shape, self.dtype)
        span = 1 + sum((size - 1) * step for size, step in zip(self.shape, self.stride, strict=True))
        raw = _read_elements(storage, self.offset, span)
        if span != count or self.stride != _contiguous(self.shape):
            step = storage.dtype.itemsize
            view = np.lib.stride_tricks.as_strided(raw, self.shape, [s * step for s in self.stride], writeable=False)
            raw = np.ascontiguousarray(view)
        values = raw.reshape(self.shape)
        if storage.kind == BFLOAT16:  # bfloat16 is the upper half of a float32
            return (values.astype(np.uint32) << 16).view(np.float32)
        return values if values.dtype.isnative else values.astype(values.dtype.newbyteorder("="))


def _contiguous(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def _read_elements(storage: _Storage, first: int, count: int) -> np.ndarray:
    out = np.empty(count, storage.dtype)
    size = storage.dtype.itemsize
    if storage.start < 0:  # a compressed member (an archive rezipped by hand): decompress up to what is needed
        with zipfile.ZipFile(storage.path) as archive, archive.open(storage.member) as member:
            member.seek(first * size)
            data = member.read(count * size)
        if len(data) != count * size:
            raise TorchFileError(f"{storage.member} ends early")
        out[:] = np.frombuffer(data, storage.dtype)
        return out
    with open(storage.path, "rb") as handle:
        handle.seek(storage.start + first * size)
        if handle.readinto(out.data.cast("B")) != count * size:
            raise TorchFileError(f"{storage.member} ends early")
    return out


def load(path: str | Path) -> Any:
    """The object saved in `path`, with `Tensor`s in place of torch tensors (raises TorchFileError)."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as handle:
            head = handle.read(len(LEGACY_MAGIC))
        if head == LEGACY_MAGIC:
            raise TorchFileError(
                "it is in PyTorch's legacy format (saved before PyTorch 1.6 or with "
                "_use_new_zipfile_serialization=False), which resdsl does not read; re-save it with a current "
                "PyTorch: torch.save(torch.load(path), path)"
            )
        raise TorchFileError("it is not a file written by torch.save (not a zip archive)")
    with zipfile.ZipFile(path) as archive, open(path, "rb") as raw:
        infos = {info.filename: info for info in archive.infolist()}
        pickles = [name for name in infos if name.count("/") == 1 and name.endswith("/data.pkl")]
        if any(name.count("/") == 1 and name.endswith("/constants.pkl") for name in infos):
            raise TorchFileError("it is a TorchScript archive (torch.jit.save), not a saved state_dict")
        if len(pickles) != 1:
            raise TorchFileError("it is a zip archive, but not one written by torch.save (no <name>/data.pkl)")
        prefix = pickles[0][: -len("data.pkl")]
        info = infos[pickles[0]]
        if info.file_size > MAX_PICKLE_BYTES:
            raise TorchFileError(f"its pickle is {info.file_size:,} bytes, far more than a state_dict needs")
        size = path.stat().st_size
        order = archive.read(prefix + "byteorder").decode().strip() if prefix + "byteorder" in infos else "little"
        if order not in ("little", "big"):
            raise TorchFileError(f"unknown byte order {order!r}")

        def storage(kind: str, key: str, numel: int) -> _Storage:
            member = infos.get(f"{prefix}data/{key}")
            if member is None:
                raise TorchFileError(f"a tensor refers to storage {key!r}, which the archive lacks")
            dtype = np.dtype(STORAGES[kind]).newbyteorder("<" if order == "little" else ">")
            start = _data_start(raw, member)
            end = (start if start >= 0 else 0) + numel * dtype.itemsize
            if member.file_size < numel * dtype.itemsize or end > size:
                raise TorchFileError(f"storage {key!r} holds fewer bytes than its {numel} elements need")
            return _Storage(path, member.filename, start, numel, kind, dtype)

        return _Unpickler(archive.read(info), storage).run()


def _data_start(raw: Any, info: zipfile.ZipInfo) -> int:
    """The file offset of a stored member's bytes (after its local header), or -1 if it is compressed."""
    if info.compress_type != zipfile.ZIP_STORED:
        return -1
    raw.seek(info.header_offset)
    header = raw.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise TorchFileError(f"the zip entry of {info.filename} is damaged")
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_length + extra_length


class _Dict(dict):
    """collections.OrderedDict as the file builds it (dicts keep order); BUILD's attributes (`_metadata`) dropped."""


class _StorageKind:
    """torch.FloatStorage and its kin: only a name inside a storage reference."""

    def __init__(self, name: str):
        self.name = name


class _Call:
    """A global the pickle may call (REDUCE): a stand-in that checks its arguments."""

    def __init__(self, name: str, function: Any):
        self.name = name
        self.function = function


def _ordered_dict(*args: Any) -> _Dict:
    if args:
        raise TorchFileError("OrderedDict is built with arguments, which torch.save never writes")
    return _Dict()


def _rebuild_tensor(storage: Any, offset: Any, shape: Any, stride: Any, *rest: Any) -> Tensor:
    """torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])."""
    if not isinstance(storage, _Storage):
        raise TorchFileError("a tensor is rebuilt from something other than a storage")
    if not (
        _is_int(offset)
        and isinstance(shape, tuple)
        and isinstance(stride, tuple)
        and len(shape) == len(stride)
        and all(map(_is_int, shape + stride))
        and offset >= 0
        and min(shape + stride, default=0) >= 0
    ):
        raise TorchFileError("a tensor has a malformed offset, shape or stride")
    if math.prod(shape) and offset + 1 + sum((n - 1) * s for n, s in zip(shape, stride, strict=True)) > storage.numel:
        raise TorchFileError(f"a tensor of shape {list(shape)} reaches past the end of its storage")
    dtype = "float32" if storage.kind == BFLOAT16 else storage.dtype.newbyteorder("=").name
    return Tensor(shape, dtype, storage, offset, stride)


def _rebuild_parameter(data: Any, *rest: Any) -> Tensor:
    """torch._utils._rebuild_parameter(data, requires_grad, hooks[, state]): an nn.Parameter is its tensor."""
    if not isinstance(data, Tensor):
        raise TorchFileError("a parameter is rebuilt from something other than a tensor")
    return data


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): _Call("OrderedDict", _ordered_dict),
    ("torch._utils", "_rebuild_tensor_v2"): _Call("_rebuild_tensor_v2", _rebuild_tensor),
    ("torch._utils", "_rebuild_tensor"): _Call("_rebuild_tensor", _rebuild_tensor),
    ("torch._utils", "_rebuild_parameter"): _Call("_rebuild_parameter", _rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"): _Call("_rebuild_parameter_with_state", _rebuild_parameter),
    **{("torch", name): _StorageKind(name) for name in STORAGES},
}

_MARK = object()  # the stack's marker for MARK


class _Unpickler:
    """A pickle interpreter for the opcodes torch.save writes (protocols 2 to 5); nothing it reads is ever called."""

    def __init__(self, data: bytes, storage: Any):
        self.data = data
        self.pos = 0
        self.stack: list[Any] = []
        self.memo: dict[int, Any] = {}
        self.storage = storage  # (kind, key, numel) -> _Storage
        self.storages: dict[str, _Storage] = {}

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise TorchFileError("its pickle ends early")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unsigned(self, n: int) -> int:
        return int.from_bytes(self.take(n), "little")

    def line(self) -> str:
        end = self.data.find(b"\n", self.pos)
        if end < 0:
            raise TorchFileError("its pickle ends early")
        text = self.data[self.pos : end].decode("utf-8", "replace")
        self.pos = end + 1
        return text

    def pop(self) -> Any:
        if not self.stack or self.stack[-1] is _MARK:
            raise TorchFileError("its pickle is malformed (stack underflow)")
        return self.stack.pop()

    def pop_mark(self) -> list[Any]:
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index] is _MARK:
                items = self.stack[index + 1 :]
                del self.stack[index:]
                return items
        raise TorchFileError("its pickle is malformed (no mark)")

    def top(self, kind: type) -> Any:
        if not self.stack or not isinstance(self.stack[-1], kind):
            raise TorchFileError(f"its pickle adds items to something that is not a {kind.__name__}")
        return self.stack[-1]

    def run(self) -> Any:
        data, table = self.data, _TABLE
        start = 0
        try:
            while True:
                start = self.pos
                handler = table[data[start]]
                self.pos = start + 1
                if handler is None:
                    raise TorchFileError(
                        f"its pickle uses opcode {data[start : start + 1]!r} at byte {start}, which a state_dict "
                        "never needs"
                    )
                if handler is _stop:
                    value = self.pop()
                    if self.stack:
                        raise TorchFileError("its pickle is malformed (items left on the stack)")
                    return value
                handler(self)
        except IndexError:
            if start >= len(data):
                raise TorchFileError("its pickle ends early") from None
            raise TorchFileError(f"its pickle is malformed at byte {start}") from None
        except (TypeError, ValueError, KeyError, UnicodeDecodeError) as exc:
            if isinstance(exc, TorchFileError):
                raise
            raise TorchFileError(f"its pickle is malformed at byte {start}: {exc}") from None

    def global_(self, module: str, name: str) -> None:
        found = GLOBALS.get((module, name))
        if found is None and module == "torch" and name.endswith("Storage"):
            raise TorchFileError(
                f"a tensor has an unsupported dtype ({name}); resdsl reads float32, float64, float16, "
                "bfloat16, integer and bool tensors"
            )
        if found is None and module == "torch._utils" and name.startswith("_rebuild_"):
            raise TorchFileError(
                f"it holds a tensor of a kind resdsl does not read ({module}.{name}: quantized, sparse, float8 "
                "and the like); resdsl reads dense float32, float64, float16, bfloat16, integer and bool tensors"
            )
        if found is None:
            raise TorchFileError(
                f"its pickle names {module}.{name}, which is not part of a state_dict; "
                "resdsl reads tensors, dicts and lists of tensors only, and runs no code from the file"
            )
        self.stack.append(found)

    def reduce(self) -> None:
        args, function = self.pop(), self.pop()
        if not isinstance(function, _Call) or not isinstance(args, tuple):
            raise TorchFileError("its pickle calls something that is not a tensor or dict constructor")
        self.stack.append(function.function(*args))

    def build(self) -> None:
        state = self.pop()
        if not self.stack or not isinstance(self.stack[-1], _Dict) or not isinstance(state, dict):
            raise TorchFileError("its pickle sets the state of something other than an OrderedDict")

    def persistent(self) -> None:
        pid = self.pop()
        if not (
            isinstance(pid, tuple)
            and len(pid) == 5
            and pid[0] == "storage"
            and isinstance(pid[2], str)
            and _is_int(pid[4])
            and pid[4] >= 0
        ):
            raise TorchFileError("its pickle refers to something other than a tensor storage")
        _, kind, key, _, numel = pid
        if not isinstance(kind, _StorageKind):
            raise TorchFileError(f"a tensor has an unsupported storage type ({_describe(kind)})")
        known = self.storages.get(key)
        if known is None:
            known = self.storages[key] = self.storage(kind.name, key, numel)
        elif known.kind != kind.name or known.numel != numel:
            raise TorchFileError(f"storage {key!r} is described two ways")
        self.stack.append(known)


def _describe(kind: Any) -> str:
    return kind.name if isinstance(kind, (_StorageKind, _Call)) else type(kind).__name__


def _stop(_: _Unpickler) -> None:  # handled in run()
    pass


def _setitems(u: _Unpickler) -> None:
    items = u.pop_mark()
    target = u.top(dict)
    if len(items) % 2:
        raise TorchFileError("its pickle is malformed (odd SETITEMS)")
    for key, value in zip(items[::2], items[1::2], strict=True):
        target[key] = value


def _setitem(u: _Unpickler) -> None:
    value, key = u.pop(), u.pop()
    u.top(dict)[key] = value


def _appends(u: _Unpickler) -> None:
    items = u.pop_mark()
    u.top(list).extend(items)


def _append(u: _Unpickler) -> None:
    value = u.pop()
    u.top(list).append(value)


def _put(u: _Unpickler, index: int) -> None:
    u.memo[index] = u.stack[-1]  # IndexError on an empty stack: malformed


def _get(u: _Unpickler, index: int) -> None:
    u.stack.append(u.memo[index])  # KeyError for an entry never stored: malformed


def _byte(u: _Unpickler) -> int:
    value = u.data[u.pos]
    u.pos += 1
    return value


def _tuple(u: _Unpickler, n: int) -> None:
    items = [u.pop() for _ in range(n)]
    u.stack.append(tuple(reversed(items)))


def _stack_global(u: _Unpickler) -> None:
    name, module = u.pop(), u.pop()
    if not isinstance(module, str) or not isinstance(name, str):
        raise TorchFileError("its pickle names a global with something other than strings")
    u.global_(module, name)


def _global(u: _Unpickler) -> None:
    module = u.line()
    u.global_(module, u.line())


def _long(u: _Unpickler, width: int) -> None:
    u.stack.append(int.from_bytes(u.take(u.unsigned(width)), "little", signed=True))


_OPCODES: dict[bytes, Any] = {
    b"\x80": lambda u: u.take(1),  # PROTO
    b"\x95": lambda u: u.take(8),  # FRAME: a length hint
    b".": _stop,  # STOP
    b"(": lambda u: u.stack.append(_MARK),  # MARK
    b"0": lambda u: u.pop(),  # POP
    b"1": lambda u: u.pop_mark(),  # POP_MARK
    b"2": lambda u: u.stack.append(u.stack[-1]),  # DUP
    b"N": lambda u: u.stack.append(None),  # NONE
    b"\x88": lambda u: u.stack.append(True),  # NEWTRUE
    b"\x89": lambda u: u.stack.append(False),  # NEWFALSE
    b"J": lambda u: u.stack.append(int.from_bytes(u.take(4), "little", signed=True)),  # BININT
    b"K": lambda u: u.stack.append(_byte(u)),  # BININT1
    b"M": lambda u: u.stack.append(u.unsigned(2)),  # BININT2
    b"\x8a": lambda u: _long(u, 1),  # LONG1
    b"\x8b": lambda u: _long(u, 4),  # LONG4
    b"G": lambda u: u.stack.append(struct.unpack(">d", u.take(8))[0]),  # BINFLOAT
    b"X": lambda u: u.stack.append(u.take(u.unsigned(4)).decode("utf-8")),  # BINUNICODE
    b"\x8c": lambda u: u.stack.append(u.take(u.unsigned(1)).decode("utf-8")),  # SHORT_BINUNICODE
    b"\x8d": lambda u: u.stack.append(u.take(u.unsigned(8)).decode("utf-8")),  # BINUNICODE8
    b"B": lambda u: u.stack.append(u.take(u.unsigned(4))),  # BINBYTES
    b"C": lambda u: u.stack.append(u.take(u.unsigned(1))),  # SHORT_BINBYTES
    b"\x8e": lambda u: u.stack.append(u.take(u.unsigned(8))),  # BINBYTES8
    b")": lambda u: u.stack.append(()),  # EMPTY_TUPLE
    b"t": lambda u: u.stack.append(tuple(u.pop_mark())),  # TUPLE
    b"\x85": lambda u: _tuple(u, 1),  # TUPLE1
    b"\x86": lambda u: _tuple(u, 2),  # TUPLE2
    b"\x87": lambda u: _tuple(u, 3),  # TUPLE3
    b"]": lambda u: u.stack.append([]),  # EMPTY_LIST
    b"l": lambda u: u.stack.append(u.pop_mark()),  # LIST
    b"a": _append,  # APPEND
    b"e": _appends,  # APPENDS
    b"}": lambda u: u.stack.append({}),  # EMPTY_DICT
    b"s": _setitem,  # SETITEM
    b"u": _setitems,  # SETITEMS
    b"q": lambda u: _put(u, _byte(u)),  # BINPUT
    b"r": lambda u: _put(u, u.unsigned(4)),  # LONG_BINPUT
    b"\x94": lambda u: _put(u, len(u.memo)),  # MEMOIZE
    b"h": lambda u: _get(u, _byte(u)),  # BINGET
    b"j": lambda u: _get(u, u.unsigned(4)),  # LONG_BINGET
    b"c": _global,  # GLOBAL
    b"\x93": _stack_global,  # STACK_GLOBAL
    b"R": lambda u: u.reduce(),  # REDUCE
    b"b": lambda u: u.build(),  # BUILD
    b"Q": lambda u: u.persistent(),  # BINPERSID
}
_TABLE = [_OPCODES.get(bytes([code])) for code in range(256)]
