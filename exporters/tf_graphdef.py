"""Reading a TensorFlow 1 frozen graph (a serialized `GraphDef`) without TensorFlow.

A frozen graph is one protobuf message: nodes with a name, an op, inputs and attributes;
the weights are `Const` nodes whose `value` attribute holds a `TensorProto`. Importing a
published detector needs only those pieces, so this module decodes the protobuf wire format
for the handful of fields it reads (field numbers from TensorFlow's public `graph.proto`,
`node_def.proto`, `attr_value.proto`, `tensor.proto`, `tensor_shape.proto`) and ignores
every other field, as protobuf readers do. No TensorFlow, no generated code.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# TensorFlow DataType enum -> numpy dtype (the types a frozen detector's constants use)
_DTYPES: dict[int, np.dtype] = {
    1: np.dtype(np.float32), 2: np.dtype(np.float64), 3: np.dtype(np.int32),
    4: np.dtype(np.uint8), 5: np.dtype(np.int16), 6: np.dtype(np.int8),
    9: np.dtype(np.int64), 10: np.dtype(np.bool_),
}
_STRING = 7


class GraphDefError(ValueError):
    """Bytes that are not a GraphDef this reader understands; the message says where."""


@dataclass(frozen=True)
class Node:
    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: dict[str, Any] = field(hash=False)  # decoded: int, float, bool, bytes, ndarray,
    # shape (tuple), dtype (numpy dtype or "string"), or a list of those


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise GraphDefError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value): int for varint/fixed, bytes for length-delimited."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise GraphDefError(f"unsupported wire type {wire} for field {number}")
        if pos > len(buf):
            raise GraphDefError(f"field {number} runs past the end of its message")
        yield number, wire, value


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _packed_varints(wire: int, value: Any) -> list[int]:
    if wire == 0:
        return [_signed(value)]
    out, pos = [], 0
    while pos < len(value):
        item, pos = _varint(value, pos)
        out.append(_signed(item))
    return out


def _floats(value: bytes, fmt: str = "f") -> list[float]:
    """Packed (or one unpacked) little-endian floats."""
    size = struct.calcsize(fmt)
    return list(struct.unpack(f"<{len(value) // size}{fmt}", value))


def _shape(buf: bytes) -> tuple[int, ...]:
    dims = []
    for number, _, value in _fields(buf):
        if number == 2:  # Dim {size = 1, name = 2}
            size = next((_signed(v) for n, _, v in _fields(value) if n == 1), 0)
            dims.append(size)
    return tuple(dims)


def _tensor(buf: bytes) -> np.ndarray:
    """TensorProto -> ndarray: raw `tensor_content`, or the typed value lists (a single value
    fills the whole shape, as TensorFlow does)."""
    dtype, shape, content = 0, (), b""
    values: list[Any] = []
    for number, wire, value in _fields(buf):
        if number == 1:
            dtype = value
        elif number == 2:
            shape = _shape(value)
        elif number == 4:
            content = value
        elif number == 5:  # float_val
            values += _floats(value, "f")
        elif number == 6:  # double_val
            values += _floats(value, "d")
        elif number in (7, 10, 11):  # int_val, int64_val, bool_val
            values += _packed_varints(wire, value)
        elif number == 8:  # string_val
            values.append(bytes(value))
    if dtype == _STRING:
        return np.array(values, dtype=object).reshape(shape) if values else np.array([])
    if dtype not in _DTYPES:
        raise GraphDefError(f"tensor of TensorFlow dtype {dtype} is not supported")
    np_dtype = _DTYPES[dtype]
    count = int(np.prod(shape)) if shape else 1
    if content:
        return np.frombuffer(content, dtype=np_dtype.newbyteorder("<")).astype(
            np_dtype).reshape(shape)
    if not values:
        return np.zeros(shape, np_dtype)
    array = np.array(values, dtype=np_dtype)
    if array.size != count:
        array = np.concatenate([array, np.full(count - array.size, array[-1], np_dtype)])
    return array.reshape(shape)


def _list(buf: bytes) -> list[Any]:
    out: list[Any] = []
    for number, wire, value in _fields(buf):
        if number == 2:
            out.append(bytes(value))
        elif number == 3:
            out += _packed_varints(wire, value)
        elif number == 4:
            out += _floats(value)
        elif number == 5:
            out += [bool(v) for v in _packed_varints(wire, value)]
        elif number == 7:
            out.append(_shape(value))
    return out


def _attr(buf: bytes) -> Any:
    """AttrValue: list=1, s=2, i=3, f=4, b=5, type=6, shape=7, tensor=8."""
    for number, _, value in _fields(buf):
        if number == 1:
            return _list(value)
        if number == 2:
            return bytes(value)
        if number == 3:
            return _signed(value)
        if number == 4:
            return struct.unpack("<f", value)[0]
        if number == 5:
            return bool(value)
        if number == 6:
            return _DTYPES.get(value, "string" if value == _STRING else value)
        if number == 7:
            return _shape(value)
        if number == 8:
            return _tensor(value)
    return None


def _node(buf: bytes) -> Node:
    name, op, inputs, attrs = "", "", [], {}
    for number, _, value in _fields(buf):
        if number == 1:
            name = value.decode()
        elif number == 2:
            op = value.decode()
        elif number == 3:
            inputs.append(value.decode())
        elif number == 5:  # map entry {key = 1, value = 2}
            entry = {n: v for n, _, v in _fields(value)}
            attrs[entry.get(1, b"").decode()] = _attr(entry.get(2, b""))
    return Node(name, op, tuple(inputs), attrs)


def read_graphdef(path: str | Path) -> dict[str, Node]:
    """Every node of a frozen graph by name, in file order."""
    path = Path(path)
    data = path.read_bytes()
    try:
        nodes = [_node(value) for number, _, value in _fields(data) if number == 1]
    except (GraphDefError, UnicodeDecodeError, struct.error) as err:
        raise GraphDefError(f"{path}: not a TensorFlow GraphDef: {err}") from None
    if not nodes or not all(n.name and n.op for n in nodes):
        raise GraphDefError(f"{path}: not a TensorFlow GraphDef (no named nodes)")
    return {n.name: n for n in nodes}


def constants(nodes: dict[str, Node]) -> dict[str, np.ndarray]:
    """The values of the graph's Const nodes by node name: a frozen graph's weights."""
    return {name: n.attrs["value"] for name, n in nodes.items()
            if n.op == "Const" and isinstance(n.attrs.get("value"), np.ndarray)}
