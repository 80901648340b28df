"""The GraphDef reader: protobuf wire format decoded by hand, checked on a message encoded
here field by field and on the real frozen graph the person detector comes from."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from exporters.pedestrian_ssdlite import packaged_graph
from exporters.tf_graphdef import GraphDefError, constants, read_graphdef


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, payload: bytes | int, wire: int = 2) -> bytes:
    key = varint(number << 3 | wire)
    if wire == 0:
        assert isinstance(payload, int)
        return key + varint(payload)
    assert isinstance(payload, bytes)
    return key + (varint(len(payload)) + payload if wire == 2 else payload)


def attr(name: str, value: bytes) -> bytes:
    return field(5, field(1, name.encode()) + field(2, value))


def shape(*dims: int) -> bytes:
    return b"".join(field(2, field(1, d, wire=0)) for d in dims)


def node(name: str, op: str, inputs: tuple[str, ...] = (), attrs: bytes = b"") -> bytes:
    body = field(1, name.encode()) + field(2, op.encode())
    body += b"".join(field(3, i.encode()) for i in inputs)
    return field(1, body + attrs)


def test_reads_nodes_attributes_and_tensors(tmp_path: Path) -> None:
    weights = np.arange(6, dtype=np.float32).reshape(2, 3)
    raw = field(1, 1, wire=0) + field(2, shape(2, 3)) + field(4, weights.tobytes())
    filled = field(1, 1, wire=0) + field(2, shape(4)) + field(5, struct.pack("<f", 0.25))
    ints = field(1, 3, wire=0) + field(2, shape(3)) + field(7, varint(1) + varint(2) + varint(3))
    graph = (node("w", "Const", attrs=attr("value", field(8, raw)))
             + node("c", "Const", attrs=attr("value", field(8, filled)))
             + node("i", "Const", attrs=attr("value", field(8, ints)))
             + node("conv", "Conv2D", ("x", "w"),
                    attr("strides", field(1, field(3, varint(1) + varint(2) + varint(2)
                                                       + varint(1))))
                    + attr("padding", field(2, b"SAME"))
                    + attr("epsilon", field(4, struct.pack("<f", 1e-3), wire=5))
                    + attr("is_training", field(5, 0, wire=0))))
    path = tmp_path / "graph.pb"
    path.write_bytes(graph)
    nodes = read_graphdef(path)
    assert list(nodes) == ["w", "c", "i", "conv"]
    conv = nodes["conv"]
    assert (conv.op, conv.inputs) == ("Conv2D", ("x", "w"))
    assert conv.attrs["strides"] == [1, 2, 2, 1]
    assert conv.attrs["padding"] == b"SAME"
    assert conv.attrs["epsilon"] == pytest.approx(1e-3)
    assert conv.attrs["is_training"] is False
    values = constants(nodes)
    np.testing.assert_array_equal(values["w"], weights)
    np.testing.assert_array_equal(values["c"], np.full(4, 0.25, np.float32))  # one value fills
    np.testing.assert_array_equal(values["i"], np.array([1, 2, 3], np.int32))


@pytest.mark.parametrize("data", [b"", b"\x0a\xff\xff\xff\x0f", b"\x0f\x00"])
def test_bytes_that_are_no_graph_are_refused(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bad.pb"
    path.write_bytes(data)
    with pytest.raises(GraphDefError, match="not a TensorFlow GraphDef"):
        read_graphdef(path)


def test_the_packaged_frozen_graph() -> None:
    nodes = read_graphdef(packaged_graph())
    assert nodes["image_tensor"].op == "Placeholder"
    assert nodes["image_tensor"].attrs["shape"] == (-1, -1, -1, 3)
    values = constants(nodes)
    assert float(values["Preprocessor/mul/x"]) == pytest.approx(2 / 255)
    nms = ("Postprocessor/BatchMultiClassNonMaxSuppression/map/while/"
           "MultiClassNonMaxSuppression/non_max_suppression/")
    assert float(values[nms + "iou_threshold"]) == pytest.approx(0.6)
    conv = values["FeatureExtractor/MobilenetV2/Conv/weights"]
    assert conv.shape == (3, 3, 3, 32)
    assert conv.dtype == np.float32
    assert np.isfinite(conv).all()
