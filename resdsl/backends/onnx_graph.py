"""ONNX backend: an inference graph written straight from the IR, weights included.

One ONNX node per IR op (plus `Constant`s, and a `Slice` or `Pad` where
`pad_shortcut` or an average pool needs one), each written by its op
(`Op.onnx`) through this backend's writer. Names follow the IR: a module's node and
its output tensor are named by its module path (`layer2.0.conv1`), a
functional op by its block and kind (`layer2.0.relu_1`); initializers are the
PyTorch state_dict keys. The graph input is `input` (batch×C×H×W), the output
`output` (or, for a network with named outputs, one output per name); the batch
dimension is the symbol `batch`. Every other tensor gets a
`value_info` entry with the IR's inferred shape.

The model is encoded here, field by field, as ONNX's protobuf schema lays it
out (onnx.proto: ModelProto, GraphProto, NodeProto, ...), so that writing a
file never imports the `onnx` package: its import alone (ml_dtypes' dtype
registration) costs more CPU time than building and writing a ResNet-50.
`emit` parses the same bytes into an onnx.ModelProto; the goldens and the
checker tests hold the encoding to what onnx's own helpers write.
"""

from __future__ import annotations

import itertools
import math
import struct
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..ir.graph import IR
from ..ir.node import Node
from ..ops.base import state_key

if TYPE_CHECKING:
    import onnx

# The lowest IR version that each opset allows (onnx.helper.find_min_ir_version_for; a test checks the table).
IR_VERSIONS = {13: 7, 14: 7, 15: 8, 16: 8, 17: 8, 18: 8, 19: 9, 20: 9, 21: 10}
OPSETS = tuple(IR_VERSIONS)
DEFAULT_OPSET = 17
INPUT, OUTPUT, BATCH = "input", "output", "batch"


class OnnxEmitError(RuntimeError):
    """The IR holds something the ONNX backend cannot express: a resdsl bug."""


class _Writer:
    """What the ops write their nodes through (ops.base.OnnxWriter): names, the encoded nodes and the weights."""

    def __init__(self, ir: IR, available: Collection[str], opset: int):
        self.ir = ir
        self.opset = opset
        self.available = available  # the weights' keys
        self.nodes: list[bytes] = []  # encoded NodeProtos
        self.weights: list[str] = []  # state keys, in the order the graph reads them
        self.constants: dict[str, tuple[tuple[int, ...], int]] = {}  # constant tensor name -> shape, element type
        self.inner: list[bytes] = []  # value infos of tensors inside one IR op's expansion
        self.names = _node_names(ir)
        self.tensors = dict(self.names)  # node -> its output tensor; differs only for the graph output
        self.node: Node | None = None  # the IR node being written
        self.name = ""
        self.inputs: list[tuple[int, ...]] = []
        self.shape: tuple[int, ...] = ()

    def start(self, node: Node) -> None:
        """Write `node` next: its name, operand shapes and shape become this writer's."""
        assert node.shape is not None
        self.node = node
        self.name = self.names[node]
        self.inputs = [operand.shape for operand in self.ir.operands(node)]  # type: ignore[misc]
        self.shape = node.shape

    def weight(self, key: str) -> str:
        """Make the state entry `<path>.<key>` an initializer; returns its name."""
        assert self.node is not None
        name = state_key(self.node.path, key)
        if name not in self.available:
            raise OnnxEmitError(f"no weights for {name}")
        self.weights.append(name)
        return name

    def constant(self, label: str, values: list[int]) -> str:
        """An int64 Constant node (kept out of the initializers, which mirror the state_dict)."""
        name = f"{self.name}.{label}"
        data = np.array(values, dtype="<i8").tobytes()
        tensor = _tensor_header(name, (len(values),), "int64") + _bytes(9, data)  # raw_data
        self.nodes.append(_node("Constant", [], [name], name, {"value": _Encoded(tensor)}))
        self.constants[name] = ((len(values),), INT64)
        return name

    def float_constant(self, label: str, values: Sequence[float], shape: tuple[int, ...]) -> str:
        """A float32 Constant node of `shape` (values in row-major order), kept out of the initializers too."""
        name = f"{self.name}.{label}"
        data = np.array(values, dtype="<f4").reshape(shape).tobytes()
        tensor = _tensor_header(name, shape, "float32") + _bytes(9, data)  # raw_data
        self.nodes.append(_node("Constant", [], [name], name, {"value": _Encoded(tensor)}))
        self.constants[name] = (shape, FLOAT)
        return name

    def step(
        self, label: str, op_type: str, inputs: list[str], shape: tuple[int, ...], batched: bool = True, **attrs: Any
    ) -> str:
        name = f"{self.name}.{label}"
        self.nodes.append(_node(op_type, inputs, [name], name, attrs))
        self.inner.append(_tensor(name, shape) if batched else _value_info(name, FLOAT, list(shape)))
        return name

    def int_step(self, label: str, op_type: str, inputs: list[str], length: int, **attrs: Any) -> str:
        name = f"{self.name}.{label}"
        self.nodes.append(_node(op_type, inputs, [name], name, attrs))
        self.inner.append(_value_info(name, INT64, [length]))
        return name

    def output(self, op_type: str, inputs: list[str], **attrs: Any) -> None:
        assert self.node is not None
        self.nodes.append(_node(op_type, inputs, [self.tensors[self.node]], self.name, attrs))


def _node_names(ir: IR) -> dict[Node, str]:
    """Module paths for modules; `<block>.<kind>`, numbered from the second, for functional ops."""
    taken = {n.path for n in ir.graph if n.path} | {INPUT, OUTPUT}
    names: dict[Node, str] = {}
    for node in ir.walk():
        # A bare parameter's path names its initializer (a layer scale's `gamma`): its output is `<path>.out`.
        if node.path and node.op.parameter:
            names[node] = f"{node.path}.out"
            continue
        if node.path and node.path not in (INPUT, OUTPUT):  # a layer named `output` yields to the graph's
            names[node] = node.path
            continue
        if node.op.kind == "input":
            names[node] = INPUT
            continue
        block = node.block
        base = node.path or (block.prefix() if block is not None else "") + node.op.kind
        name, n = base, 1
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        taken.add(name)
        names[node] = name
    return names


def emit(
    ir: IR,
    state: dict[str, np.ndarray],
    *,
    opset: int = DEFAULT_OPSET,
    metadata: dict[str, str] | None = None,
    producer_version: str = "",
) -> onnx.ModelProto:
    """The ONNX model of `ir` with weights `state` (keys as weights.layout gives them), as an onnx.ModelProto."""
    import onnx
    from onnx import numpy_helper

    head, keys = _model(ir, state, opset, metadata, producer_version)
    model = onnx.ModelProto.FromString(head)
    model.graph.initializer.extend(numpy_helper.from_array(np.asarray(state[k]), k) for k in keys)
    return model


# Protobuf reads and writes no message of 2 GiB or more: heavier weights go to an external data file.
PROTOBUF_LIMIT = 2**31 - 1


@dataclass
class Encoded:
    """A model as chunks of bytes to write in order: the model file's, and the external data file's if any."""

    model: Iterator[bytes | memoryview]
    data: Iterator[bytes | memoryview] | None


def serialize(
    ir: IR,
    shapes: Mapping[str, tuple[tuple[int, ...], str]],
    arrays: Callable[[list[str]], Iterable[np.ndarray]],
    *,
    opset: int = DEFAULT_OPSET,
    metadata: dict[str, str] | None = None,
    producer_version: str = "",
    data_file: str | None = None,
    external: bool = False,
) -> Encoded:
    """The bytes of `emit`'s model, without protobuf messages for the weights.

    `shapes` gives each weight's shape and dtype name (as weights.layout
    does); `arrays(keys)` yields the weights of `keys` in that order, and
    each is written out before the next is asked for, so a stream may reuse
    its buffers (weights.stream).

    Protobuf merges repeated occurrences of a message field, so a model
    without initializers followed by a second `graph` field that holds only
    the initializers parses (onnx.load, onnxruntime) to exactly `emit`'s model.
    Encoding the tensors by hand and handing out the arrays' own buffers
    means the weights are copied once, into the file: for ResNet-50 this
    takes a fifth of the time of building and serialising the full message.

    With `external`, or when the model would reach PROTOBUF_LIMIT, the
    weights go one after the other into `data_file` (a file name beside the
    model), which the initializers reference by offset and length: ONNX's
    external data, which onnx.load and onnxruntime read from the model's folder.
    """
    head, keys = _model(ir, shapes, opset, metadata, producer_version)
    lengths = [math.prod(shapes[key][0]) * np.dtype(shapes[key][1]).itemsize for key in keys]
    headers = [_tensor_header(key, *shapes[key]) + _tag(9) + _varint(n) for key, n in zip(keys, lengths, strict=True)]
    sizes = [len(header) + n for header, n in zip(headers, lengths, strict=True)]
    graph_size = _graph_size(sizes)
    if external or len(head) + len(_tag(7)) + len(_varint(graph_size)) + graph_size > PROTOBUF_LIMIT:
        if data_file is None:
            raise OnnxEmitError(f"{sum(lengths) / 2**30:.1f} GiB of weights need an external data file")
        offsets = list(itertools.accumulate(lengths, initial=0))[: len(lengths)]  # where each weight starts
        headers = [
            _tensor_header(key, *shapes[key]) + _external(data_file, offset, n)
            for key, offset, n in zip(keys, offsets, lengths, strict=True)
        ]
        sizes = [len(header) for header in headers]
        return Encoded(
            iter(
                [
                    head,
                    _tag(7),
                    _varint(_graph_size(sizes)),
                    *(_tag(5) + _varint(n) + header for header, n in zip(headers, sizes, strict=True)),
                ]
            ),
            _data(keys, shapes, arrays),
        )

    def chunks() -> Iterator[bytes | memoryview]:
        yield head
        yield _tag(7) + _varint(graph_size)  # ModelProto.graph
        for header, n, data in zip(headers, sizes, _data(keys, shapes, arrays), strict=True):
            yield _tag(5) + _varint(n) + header  # GraphProto.initializer
            yield data

    return Encoded(chunks(), None)


def _data(
    keys: list[str],
    shapes: Mapping[str, tuple[tuple[int, ...], str]],
    arrays: Callable[[list[str]], Iterable[np.ndarray]],
) -> Iterator[memoryview]:
    """Each weight's bytes, little-endian, as a view of the array (not copied)."""
    for key, array in zip(keys, arrays(keys), strict=True):
        shape, dtype = shapes[key]
        array = np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<"))
        if array.shape != shape:
            raise OnnxEmitError(f"weights for {key} are {array.shape}, not {shape}")
        yield array.data.cast("B")


def _graph_size(sizes: list[int]) -> int:
    """The length of a GraphProto holding initializers of these encoded sizes."""
    return sum(len(_tag(5)) + len(_varint(n)) + n for n in sizes)


FLOAT, INT64 = 1, 7  # TensorProto.DataType
_DATA_TYPES = {np.dtype("float32"): FLOAT, np.dtype("int64"): INT64}


def _tensor_header(name: str, shape: tuple[int, ...], dtype: str) -> bytes:
    """A TensorProto's fields before its data, in number order as protobuf writes them: dims 1, data_type 2, name 8."""
    header = b"".join(b"\x08" + _varint(d) for d in shape)
    header += b"\x10" + _varint(_DATA_TYPES[np.dtype(dtype)])
    return header + _tag(8) + _varint(len(name.encode())) + name.encode()


def _external(location: str, offset: int, length: int) -> bytes:
    """TensorProto's external_data (field 13: location, offset, length) and data_location EXTERNAL (14 = 1)."""
    fields = b""
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        entry = _tag(1) + _varint(len(key)) + key.encode() + _tag(2) + _varint(len(value.encode())) + value.encode()
        fields += _tag(13) + _varint(len(entry)) + entry
    return fields + b"\x70\x01"


def _tag(number: int) -> bytes:
    """The key of a length-delimited field."""
    return _varint(number << 3 | 2)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _model(
    ir: IR, available: Collection[str], opset: int, metadata: dict[str, str] | None, producer_version: str
) -> tuple[bytes, list[str]]:
    """The encoded ModelProto without initializers, and the state keys its initializers are, in order."""
    if opset not in OPSETS:
        raise ValueError(f"opset {opset} is not supported; choose one of {', '.join(map(str, OPSETS))}")
    writer = _Writer(ir, available, opset)
    walk = ir.walk()
    finals = _graph_outputs(ir, writer, walk)
    value_info = []
    for node in walk[1:]:  # the input is the graph's
        if node in finals and finals[node] is None:
            continue  # an output whose tensor is its operand's
        writer.start(node)
        node.op.onnx(writer, [writer.tensors[p] for p in ir.operands(node)])
        if node not in finals:
            value_info.append(_tensor(writer.tensors[node], writer.shape))
    value_info += writer.inner
    value_info += [_value_info(name, dtype, list(shape)) for name, (shape, dtype) in writer.constants.items()]
    outputs = [_tensor(writer.tensors[node], node.shape) for node in finals]  # type: ignore[arg-type]
    produced = {writer.tensors[node] for node in finals}
    value_info = [info for info in value_info if _info_name(info) not in produced]
    graph = (  # GraphProto: node 1, name 2, input 11, output 12, value_info 13
        b"".join(_bytes(1, node) for node in writer.nodes)
        + _string(2, ir.name)
        + _bytes(11, _tensor(INPUT, ir.input_shape))
        + b"".join(_bytes(12, output) for output in outputs)
        + b"".join(_bytes(13, info) for info in value_info)
    )
    properties = {"network": ir.name, **(metadata or {})}
    model = (  # ModelProto: ir_version 1, producer 2 and 3, doc_string 6, graph 7, opset_import 8, metadata 14
        _int(1, IR_VERSIONS[opset])
        + _string(2, "resdsl")
        + _string(3, producer_version)
        + _string(6, f"{ir.name}: generated by resdsl")
        + _bytes(7, graph)
        + _bytes(8, _string(1, "") + _int(2, opset))
        + b"".join(_bytes(14, _string(1, key) + _string(2, value)) for key, value in properties.items())
    )
    return model, writer.weights


def _graph_outputs(ir: IR, writer: _Writer, walk: list[Node]) -> dict[Node, Node | None]:
    """The graph's outputs, in order, each to the node that writes it (None: no node, its operand's tensor).

    One output, `output`, for a network with one; else one per name of the spec's `return` statement,
    named so: an output whose operand's tensor has its name is that tensor (`p2 = conv(...)`); else an
    Identity writes it, and a tensor that had the name is renamed `<name>.inner`.
    """
    named = ir.outputs()
    if not named:
        writer.tensors[walk[-1]] = OUTPUT
        return {walk[-1]: walk[-1]}
    finals: dict[Node, Node | None] = {}
    taken = set(writer.tensors.values())
    for node in named:
        assert node.name is not None
        (operand,) = ir.operands(node)
        if writer.tensors[operand] == node.name:
            finals[node] = None
            writer.tensors[node] = node.name
            continue
        for other, tensor in list(writer.tensors.items()):
            if tensor == node.name:
                renamed, n = f"{tensor}.inner", 1
                while renamed in taken:
                    renamed, n = f"{tensor}.inner{n}", n + 1
                taken.add(renamed)
                writer.tensors[other] = renamed
        writer.tensors[node] = node.name
        finals[node] = node
    return finals


def _info_name(info: bytes) -> str:
    """The name of an encoded ValueInfoProto (field 1, written first by `_value_info`)."""
    length, start = 0, 1
    shift = 0
    while True:
        byte = info[start]
        length |= (byte & 0x7F) << shift
        start += 1
        if not byte & 0x80:
            break
        shift += 7
    return info[start : start + length].decode()


def _tensor(name: str, shape: tuple[int, ...]) -> bytes:
    return _value_info(name, FLOAT, [BATCH, *shape])


def _value_info(name: str, elem_type: int, dims: list[int | str]) -> bytes:
    """ValueInfoProto {name 1, type 2: TypeProto {tensor_type 1: {elem_type 1, shape 2: {dim 1}}}}."""
    shape = b"".join(_bytes(1, _string(2, d) if isinstance(d, str) else _int(1, d)) for d in dims)
    return _string(1, name) + _bytes(2, _bytes(1, _int(1, elem_type) + _bytes(2, shape)))


@dataclass(frozen=True)
class _Encoded:
    """An already encoded TensorProto, as an attribute value."""

    data: bytes


def _node(op_type: str, inputs: list[str], outputs: list[str], name: str, attrs: dict[str, Any]) -> bytes:
    """NodeProto {input 1, output 2, name 3, op_type 4, attribute 5}, attributes sorted by name as onnx.helper does."""
    return (
        b"".join(_string(1, i) for i in inputs)
        + b"".join(_string(2, o) for o in outputs)
        + _string(3, name)
        + _string(4, op_type)
        + b"".join(_bytes(5, _attribute(key, attrs[key])) for key in sorted(attrs))
    )


def _attribute(name: str, value: Any) -> bytes:
    """AttributeProto {name 1, f 2, i 3, s 4, t 5, ints 8, type 20}, typed as onnx.helper.make_attribute types it."""
    if isinstance(value, _Encoded):
        field, kind = _bytes(5, value.data), 4  # TENSOR
    elif isinstance(value, float):
        field, kind = _varint(2 << 3 | 5) + struct.pack("<f", value), 1  # FLOAT (fixed32)
    elif isinstance(value, int):
        field, kind = _int(3, value), 2  # INT
    elif isinstance(value, str):
        field, kind = _string(4, value), 3  # STRING
    elif isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        field, kind = b"".join(_int(8, v) for v in value), 7  # INTS, unpacked as proto2 writes them
    else:
        raise OnnxEmitError(f"attribute {name}: cannot encode {value!r}")
    return _string(1, name) + field + _int(20, kind)


def _int(number: int, value: int) -> bytes:
    """A varint field; negative values as 64-bit two's complement, as protobuf writes int64."""
    return _varint(number << 3) + _varint(value & 0xFFFF_FFFF_FFFF_FFFF)


def _bytes(number: int, data: bytes) -> bytes:
    return _tag(number) + _varint(len(data)) + data


def _string(number: int, text: str) -> bytes:
    return _bytes(number, text.encode())
