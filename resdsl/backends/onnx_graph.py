"""ONNX backend: an inference graph written straight from the IR, weights included.

One ONNX node per IR op (plus `Constant`s, and a `Slice` or `Pad` where
`pad_shortcut` or an average pool needs one), emitted by a function per op
kind (`EMITTERS`). Names follow the IR: a module's node and
its output tensor are named by its module path (`layer2.0.conv1`), a
functional op by its block and kind (`layer2.0.relu_1`); initializers are the
PyTorch state_dict keys. The graph input is `input` (batch×C×H×W), the output
`output`; the batch dimension is the symbol `batch`. Every other tensor gets a
`value_info` entry with the IR's inferred shape.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..ir.graph import operands, order
from ..ir.ops import se_channels

OPSETS = tuple(range(13, 22))
DEFAULT_OPSET = 17
INPUT, OUTPUT, BATCH = "input", "output", "batch"


class OnnxEmitError(RuntimeError):
    """The IR holds something the ONNX backend cannot express: a resdsl bug."""


class _Context:
    """What the per-kind emitters share: names, the node list and the weights."""

    def __init__(self, graph: nx.DiGraph, available: Collection[str]):
        self.graph = graph
        self.available = available  # the weights' keys
        self.nodes: list[onnx.NodeProto] = []
        self.weights: list[str] = []  # state keys, in the order the graph reads them
        self.constants: dict[str, tuple[int, ...]] = {}  # constant tensor name -> shape
        self.inner: list[onnx.ValueInfoProto] = []  # tensors inside one IR op's expansion
        self.names = _node_names(graph)
        self.tensors = dict(self.names)  # node -> its output tensor; differs only for the graph output

    def weight(self, node: int, name: str) -> str:
        """Make the state entry `<path>.<name>` an initializer; returns its name."""
        key = f"{self.graph.nodes[node]['path']}.{name}"
        if key not in self.available:
            raise OnnxEmitError(f"no weights for {key}")
        self.weights.append(key)
        return key

    def constant(self, node: int, label: str, values: list[int]) -> str:
        """An int64 Constant node (kept out of the initializers, which mirror the state_dict)."""
        name = f"{self.names[node]}.{label}"
        tensor = numpy_helper.from_array(np.array(values, dtype=np.int64), name)
        self.nodes.append(helper.make_node("Constant", [], [name], name=name, value=tensor))
        self.constants[name] = (len(values),)
        return name

    def add(self, op_type: str, node: int, inputs: list[str], **attrs) -> None:
        self.nodes.append(helper.make_node(op_type, inputs, [self.tensors[node]], name=self.names[node], **attrs))


Emitter = Callable[[_Context, int, list[str]], None]
EMITTERS: dict[str, Emitter] = {}


def emits(*kinds: str) -> Callable[[Emitter], Emitter]:
    """Register the emitter of one or more IR op kinds."""

    def register(function: Emitter) -> Emitter:
        for kind in kinds:
            EMITTERS[kind] = function
        return function

    return register


@emits("conv")
def _conv(ctx: _Context, node: int, inputs: list[str]) -> None:
    op = ctx.graph.nodes[node]["op"]
    inputs = inputs + [ctx.weight(node, "weight")] + ([ctx.weight(node, "bias")] if op.bias else [])
    ctx.add(
        "Conv",
        node,
        inputs,
        kernel_shape=[op.kernel] * 2,
        strides=[op.stride] * 2,
        pads=[op.padding] * 4,
        dilations=[op.dilation] * 2,
        group=op.groups,
    )


@emits("batchnorm")
def _batchnorm(ctx: _Context, node: int, inputs: list[str]) -> None:
    op = ctx.graph.nodes[node]["op"]
    params = [ctx.weight(node, k) for k in ("weight", "bias", "running_mean", "running_var")]
    ctx.add("BatchNormalization", node, inputs + params, epsilon=op.eps)


@emits("relu")
def _relu(ctx: _Context, node: int, inputs: list[str]) -> None:
    ctx.add("Relu", node, inputs)


def _pool_pads(ctx: _Context, node: int) -> tuple[list[int], int]:
    """Explicit pads, [top, left, bottom, right], that give PyTorch's output size without ceil_mode.

    ONNX's ceil_mode keeps a last window that starts in the right padding,
    which PyTorch drops (shape inference then disagrees with the IR); extra end
    padding, ignored by MaxPool and by AveragePool without count_include_pad,
    reproduces PyTorch exactly. Returns the pads and the extra amount.
    """
    op = ctx.graph.nodes[node]["op"]
    _, h, w = ctx.graph.nodes[operands(ctx.graph, node)[0]]["shape"]
    _, out_h, out_w = ctx.graph.nodes[node]["shape"]
    p, k, s = op.padding, op.kernel, op.stride
    extra_h, extra_w = (max(0, (out - 1) * s + k - (size + 2 * p)) for out, size in ((out_h, h), (out_w, w)))
    return [p, p, p + extra_h, p + extra_w], extra_h + extra_w


@emits("maxpool")
def _maxpool(ctx: _Context, node: int, inputs: list[str]) -> None:
    op = ctx.graph.nodes[node]["op"]
    pads, _ = _pool_pads(ctx, node)
    ctx.add("MaxPool", node, inputs, kernel_shape=[op.kernel] * 2, strides=[op.stride] * 2, pads=pads)


@emits("avgpool")
def _avgpool(ctx: _Context, node: int, inputs: list[str]) -> None:
    op = ctx.graph.nodes[node]["op"]
    pads, extra = _pool_pads(ctx, node)
    count_pad = op.count_include_pad
    if count_pad and extra and op.padding:
        # PyTorch counts the declared padding but not the ceil_mode overhang:
        # pad with zeros explicitly, then average over what lies inside.
        p = op.padding
        padded = f"{ctx.names[node]}.padded"
        pad_values = ctx.constant(node, "pads", [0, 0, p, p, 0, 0, p, p])
        ctx.nodes.append(helper.make_node("Pad", [inputs[0], pad_values], [padded], name=padded, mode="constant"))
        c, h, w = ctx.graph.nodes[operands(ctx.graph, node)[0]]["shape"]
        ctx.inner.append(_tensor(padded, (c, h + 2 * p, w + 2 * p)))
        inputs, pads, count_pad = [padded], [0, 0, pads[2] - p, pads[3] - p], False
    elif extra:
        count_pad = False  # without declared padding, only the overhang is padding: never counted
    ctx.add(
        "AveragePool",
        node,
        inputs,
        kernel_shape=[op.kernel] * 2,
        strides=[op.stride] * 2,
        pads=pads,
        count_include_pad=int(count_pad),
    )


@emits("gap")
def _gap(ctx: _Context, node: int, inputs: list[str]) -> None:
    ctx.add("GlobalAveragePool", node, inputs)


@emits("flatten")
def _flatten(ctx: _Context, node: int, inputs: list[str]) -> None:
    ctx.add("Flatten", node, inputs, axis=1)


@emits("linear")
def _linear(ctx: _Context, node: int, inputs: list[str]) -> None:
    op = ctx.graph.nodes[node]["op"]
    params = [ctx.weight(node, "weight")] + ([ctx.weight(node, "bias")] if op.bias else [])
    ctx.add("Gemm", node, inputs + params, transB=1)


@emits("dropout")
def _dropout(ctx: _Context, node: int, inputs: list[str]) -> None:
    ctx.add("Identity", node, inputs)  # inference: dropout passes its input through


@emits("add")
def _add(ctx: _Context, node: int, inputs: list[str]) -> None:
    ctx.add("Add", node, inputs)


@emits("se")
def _squeeze_excite(ctx: _Context, node: int, inputs: list[str]) -> None:
    """x · sigmoid(fc2(relu(fc1(mean over H, W of x)))), fc1 and fc2 1×1 convs with bias."""
    op = ctx.graph.nodes[node]["op"]
    channels = ctx.graph.nodes[node]["shape"][0]
    squeezed = se_channels(channels, op.reduction, op.divisor)
    name, x = ctx.names[node], inputs[0]
    steps = [
        ("pool", "GlobalAveragePool", [x], channels),
        ("fc1", "Conv", [f"{name}.pool", ctx.weight(node, "fc1.weight"), ctx.weight(node, "fc1.bias")], squeezed),
        ("relu", "Relu", [f"{name}.fc1"], squeezed),
        ("fc2", "Conv", [f"{name}.relu", ctx.weight(node, "fc2.weight"), ctx.weight(node, "fc2.bias")], channels),
        ("gate", "Sigmoid", [f"{name}.fc2"], channels),
    ]
    for label, op_type, step_inputs, width in steps:
        attrs: dict[str, Any] = {"kernel_shape": [1, 1]} if op_type == "Conv" else {}
        ctx.nodes.append(helper.make_node(op_type, step_inputs, [f"{name}.{label}"], name=f"{name}.{label}", **attrs))
        ctx.inner.append(_tensor(f"{name}.{label}", (width, 1, 1)))
    ctx.add("Mul", node, [x, f"{name}.gate"])


@emits("pad_shortcut")
def _pad_shortcut(ctx: _Context, node: int, inputs: list[str]) -> None:
    """Option A: `x[:, :, ::s, ::s]`, then zero channels before and after."""
    op = ctx.graph.nodes[node]["op"]
    source = inputs[0]
    if op.stride != 1:
        end = np.iinfo(np.int64).max
        sliced = f"{ctx.names[node]}.subsample"
        slice_inputs = [
            source,
            ctx.constant(node, "starts", [0, 0]),
            ctx.constant(node, "ends", [end, end]),
            ctx.constant(node, "axes", [2, 3]),
            ctx.constant(node, "steps", [op.stride] * 2),
        ]
        ctx.nodes.append(helper.make_node("Slice", slice_inputs, [sliced], name=sliced))
        channels = ctx.graph.nodes[operands(ctx.graph, node)[0]]["shape"][0]
        ctx.inner.append(_tensor(sliced, (channels, *ctx.graph.nodes[node]["shape"][1:])))
        source = sliced
    pads = ctx.constant(node, "pads", [0, op.pad_before, 0, 0, 0, op.pad_after, 0, 0])
    ctx.add("Pad", node, [source, pads], mode="constant")


def _node_names(graph: nx.DiGraph) -> dict[int, str]:
    """Module paths for modules; `<block>.<kind>`, numbered from the second, for functional ops."""
    taken = {graph.nodes[n]["path"] for n in graph if graph.nodes[n]["path"]} | {INPUT, OUTPUT}
    names: dict[int, str] = {}
    for node in order(graph):
        data = graph.nodes[node]
        if data["path"] and data["path"] not in (INPUT, OUTPUT):  # a layer named `output` yields to the graph's
            names[node] = data["path"]
            continue
        if data["op"].kind == "input":
            names[node] = INPUT
            continue
        base = data["path"] or (data["block"] + "." if data["block"] else "") + data["op"].kind
        name, n = base, 1
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        taken.add(name)
        names[node] = name
    return names


def emit(
    graph: nx.DiGraph,
    state: dict[str, np.ndarray],
    *,
    opset: int = DEFAULT_OPSET,
    metadata: dict[str, str] | None = None,
    producer_version: str = "",
) -> onnx.ModelProto:
    """The ONNX model of `graph` with weights `state` (keys as weights.layout gives them)."""
    model, keys = _model(graph, state, opset, metadata, producer_version)
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
    graph: nx.DiGraph,
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
    model, keys = _model(graph, shapes, opset, metadata, producer_version)
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
    graph: nx.DiGraph, available: Collection[str], opset: int, metadata: dict[str, str] | None, producer_version: str
) -> tuple[onnx.ModelProto, list[str]]:
    """The model without initializers, and the state keys its initializers are, in order."""
    if opset not in OPSETS:
        raise ValueError(f"opset {opset} is not supported; choose one of {', '.join(map(str, OPSETS))}")
    ctx = _Context(graph, available)
    walk = order(graph)
    last = walk[-1]
    ctx.tensors[last] = OUTPUT
    value_info = []
    for node in walk:
        data = graph.nodes[node]
        kind = data["op"].kind
        if kind == "input":
            continue
        emitter = EMITTERS.get(kind)
        if emitter is None:
            raise OnnxEmitError(f"the ONNX backend has no emitter for op kind {kind!r}")
        emitter(ctx, node, [ctx.tensors[p] for p in operands(graph, node)])
        if node != last:
            value_info.append(_tensor(ctx.tensors[node], data["shape"]))
    value_info += ctx.inner
    value_info += [
        helper.make_tensor_value_info(name, TensorProto.INT64, list(shape)) for name, shape in ctx.constants.items()
    ]
    source = graph.nodes[walk[0]]
    body = helper.make_graph(
        ctx.nodes,
        graph.graph["name"],
        inputs=[_tensor(INPUT, source["shape"])],
        outputs=[_tensor(OUTPUT, graph.nodes[last]["shape"])],
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
    model.doc_string = f"{graph.graph['name']}: generated by resdsl"
    helper.set_model_props(model, {"network": graph.graph["name"], **(metadata or {})})
    return model, ctx.weights


def _tensor(name: str, shape: tuple[int, ...]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [BATCH, *shape])
