from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest

from service.store import CodecError, decode_vectors, encode_vectors, memory_key


def test_memory_key_format_with_hash_tag() -> None:
    assert memory_key("v1", "cam-7:a.b_c", "mem") == "aia:v1:{cam-7:a.b_c}:mem"


@pytest.mark.parametrize("persons", [0, 1, 7])
def test_codec_round_trip_has_float16_precision(persons: int) -> None:
    vectors = np.random.default_rng(persons).normal(size=(persons, 12)).astype(np.float32)
    blob = encode_vectors(vectors)
    assert blob[:4] == b"AIAM"
    assert len(blob) == 4 + 3 + 2 * 4 + persons * 12 * 2  # header, shape, float16 payload
    decoded = decode_vectors(blob)
    assert decoded.dtype == np.float32
    assert decoded.shape == (persons, 12)
    np.testing.assert_array_equal(decoded, vectors.astype(np.float16).astype(np.float32))


def test_codec_accepts_float64_and_float16_input() -> None:
    vectors = np.array([[0.5, -2.0, 1024.0]])
    np.testing.assert_array_equal(decode_vectors(encode_vectors(vectors)), vectors)
    np.testing.assert_array_equal(
        decode_vectors(encode_vectors(vectors.astype(np.float16))), vectors)


@pytest.mark.parametrize("garbage", [
    b"",
    b"AIA",
    b"not a memory blob at all",
    pickle.dumps(np.zeros((2, 3), np.float16)),
    struct.pack("<4sBBB", b"AIAM", 2, 1, 2) + struct.pack("<II", 1, 1) + b"\0\0",  # version
    struct.pack("<4sBBB", b"AIAM", 1, 9, 2) + struct.pack("<II", 1, 1) + b"\0\0",  # dtype
    struct.pack("<4sBBB", b"AIAM", 1, 1, 3) + struct.pack("<III", 1, 1, 1) + b"\0\0",  # ndim
    struct.pack("<4sBBB", b"AIAM", 1, 1, 2) + b"\1\0",  # shape cut short
])
def test_decode_refuses_garbage(garbage: bytes) -> None:
    with pytest.raises(CodecError):
        decode_vectors(garbage)


def test_decode_refuses_wrong_payload_length() -> None:
    blob = encode_vectors(np.ones((2, 4), np.float32))
    with pytest.raises(CodecError, match="must be"):
        decode_vectors(blob[:-2])
    with pytest.raises(CodecError, match="must be"):
        decode_vectors(blob + b"\0\0")


@pytest.mark.parametrize("bad", [
    np.zeros(4), np.zeros((1, 2, 3)), np.array([[np.nan, 0.0]]), np.array([[1e6, 0.0]]),
])
def test_encode_refuses_what_it_cannot_store_faithfully(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="memory vectors"):
        encode_vectors(bad)
