"""ONNX backend: an inference graph written straight from the IR, weights included.

One ONNX node per IR op (plus `Constant`s, and a `Slice` or `Pad` where
`pad_shortcut` or an average pool needs one), each written by its op
(`Op.onnx`) through this backend's writer. Names follow the IR: a module's node and
its output tensor are named by its module path (`layer2.0.conv1`), a
functional op by its block and kind (`layer2.0.relu_1`); initializers are the
PyTorch state_dict keys. The graph input is `input` (batch×C×H×W), the output
`output`; the batch dimension is the symbol `batch`. Every other tensor gets a
`value_info` entry with the IR's inferred shape.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..ir.graph import IR
from ..ir.node import Node

OPSETS = tuple(range(13, 22))
DEFAULT_OPSET = 17
INPUT, OUTPUT, BATCH = "input", "output", "batch"


class OnnxEmitError(RuntimeError):
    """The IR holds something the ONNX backend cannot express: a resdsl bug."""


class _Writer:
    """What the ops write their nodes through (ops.base.OnnxWriter): names, the node list and the weights."""

    def __init__(self, ir: IR, available: Collection[str], opset: int):
        self.ir = ir
        self.opset = opset
        self.available = available  # the weights' keys
        self.nodes: list[onnx.NodeProto] = []
        self.weights: list[str] = []  # state keys, in the order the graph reads them
        self.constants: dict[str, tuple[tuple[int, ...], int]] = {}  # constant tensor name -> shape, element type
        self.inner: list[onnx.ValueInfoProto] = []  # tensors inside one IR op's expansion
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
        name = f"{self.node.path}.{key}"
        if name not in self.available:
            raise OnnxEmitError(f"no weights for {name}")
        self.weights.append(name)
        return name

    def constant(self, label: str, values: list[int]) -> str:
        """An int64 Constant node (kept out of the initializers, which mirror the state_dict)."""
        name = f"{self.name}.{label}"
        tensor = numpy_helper.from_array(np.array(values, dtype=np.int64), name)
        self.nodes.append(helper.make_node("Constant", [], [name], name=name, value=tensor))
        self.constants[name] = ((len(values),), TensorProto.INT64)
        return name

    def float_constant(self, label: str, values: Sequence[float], shape: tuple[int, ...]) -> str:
        """A float32 Constant node of `shape` (values in row-major order), kept out of the initializers too."""
        name = f"{self.name}.{label}"
        tensor = numpy_helper.from_array(np.array(values, dtype=np.float32).reshape(shape), name)
        self.nodes.append(helper.make_node("Constant", [], [name], name=name, value=tensor))
        self.constants[name] = (shape, TensorProto.FLOAT)
        return name

    def step(
        self, label: str, op_type: str, inputs: list[str], shape: tuple[int, ...], batched: bool = True, **attrs: Any
    ) -> str:
        name = f"{self.name}.{label}"
        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name, **attrs))
        self.inner.append(
            _tensor(name, shape) if batched else helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
        )
        return name

    def output(self, op_type: str, inputs: list[str], **attrs: Any) -> None:
        assert self.node is not None
        self.nodes.append(helper.make_node(op_type, inputs, [self.tensors[self.node]], name=self.name, **attrs))


def _node_names(ir: IR) -> dict[Node, str]:
    """Module paths for modules; `<block>.<kind>`, numbered from the second, for functional ops."""
    taken = {n.path for n in ir.graph if n.path} | {INPUT, OUTPUT}
    names: dict[Node, str] = {}
    for node in ir.walk():
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
    """The ONNX model of `ir` with weights `state` (keys as weights.layout gives them)."""
    model, keys = _model(ir, state, opset, metadata, producer_version)
    model.graph.initializer.extend(numpy_helper.from_array(state[k], k) for k in keys)
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
    model, keys = _model(ir, shapes, opset, metadata, producer_version)
    head = model.SerializeToString()
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


_DATA_TYPES = {np.dtype("float32"): TensorProto.FLOAT, np.dtype("int64"): TensorProto.INT64}


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
) -> tuple[onnx.ModelProto, list[str]]:
    """The model without initializers, and the state keys its initializers are, in order."""
    if opset not in OPSETS:
        raise ValueError(f"opset {opset} is not supported; choose one of {', '.join(map(str, OPSETS))}")
    writer = _Writer(ir, available, opset)
    walk = ir.walk()
    last = walk[-1]
    writer.tensors[last] = OUTPUT
    value_info = []
    for node in walk[1:]:  # the input is the graph's
        writer.start(node)
        node.op.onnx(writer, [writer.tensors[p] for p in ir.operands(node)])
        if node is not last:
            value_info.append(_tensor(writer.tensors[node], writer.shape))
    value_info += writer.inner
    value_info += [
        helper.make_tensor_value_info(name, dtype, list(shape)) for name, (shape, dtype) in writer.constants.items()
    ]
    body = helper.make_graph(
        writer.nodes,
        ir.name,
        inputs=[_tensor(INPUT, ir.input_shape)],
        outputs=[_tensor(OUTPUT, writer.shape)],
        value_info=value_info,
    )
    opset_id = helper.make_opsetid("", opset)
    model = helper.make_model(
        body,
        opset_imports=[opset_id],
        producer_name="resdsl",
        producer_version=producer_version,
        ir_version=helper.find_min_ir_version_for([opset_id]),
    )
    model.doc_string = f"{ir.name}: generated by resdsl"
    helper.set_model_props(model, {"network": ir.name, **(metadata or {})})
    return model, writer.weights


def _tensor(name: str, shape: tuple[int, ...]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [BATCH, *shape])
