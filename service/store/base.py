"""The memory store contract: records, the protocol, the one key builder and the vector codec.

Both implementations (in-process `LocalStore`, shared `RedisStore`) follow the same
semantics, checked by one contract test suite:
- a commit is idempotent per clip index (a second commit of the same index is a no-op);
- the session TTL slides: every commit and touch refreshes it;
- at most `max_seconds` seconds of memory per session, the oldest (lowest) seconds evicted;
- memory vectors are stored as little-endian float16 behind a small explicit header;
- a session also keeps one opaque tracker state (bytes, `service.tracking.TrackerState`): it
  is read with the memory (`read_window`) and written by the commit that applies a clip, in
  the same round trip, so replicas continue the same person tracks.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

# Clip indices remembered per session (for duplicate/gap reports) and responses kept for
# idempotent replays. Responses are large (JSON per key frame), so far fewer of them.
SEEN_CAP = 256
CACHED_RESPONSES = 16


class StoreUnavailable(Exception):  # noqa: N818 - the name is the contract
    """The store cannot answer (Redis down, timed out): the engine degrades to no memory."""


class CommitFenced(StoreUnavailable):
    """A commit refused because its clip no longer holds the session's lock, or (Redis) it
    reached the server after the client stopped waiting for it: nothing was stored, so the
    answer says memory was not kept and a retry computes the clip again."""


class CommitUnknown(StoreUnavailable):
    """No reply to a sent commit: it may have applied. From `settle_at` (monotonic seconds)
    on its deadline has passed, so a read of its answer then is final."""

    def __init__(self, detail: str, settle_at: float = 0.0) -> None:
        super().__init__(detail)
        self.settle_at = settle_at


class CodecError(ValueError):
    """Bytes that are not a memory blob written by `encode_vectors`."""


@dataclass(frozen=True)
class SessionRecord:
    id: str
    created_at: float  # unix seconds
    ttl_s: int
    model_version: str
    clips_seen: int
    last_index: int  # -1 if no clip was committed
    seen: tuple[int, ...]  # committed clip indices, ascending, the highest SEEN_CAP of them
    stored_seconds: int  # seconds of memory the session holds now (not the window's span)
    lookahead_s: int


@runtime_checkable
class MemoryStore(Protocol):
    """Per-session memory. Every call is one round trip on Redis (a pipeline or a Lua script)."""

    async def create_session(self, session: str, ttl_s: int, lookahead_s: int
                             ) -> SessionRecord: ...

    async def get_session(self, session: str) -> SessionRecord | None: ...

    async def delete_session(self, session: str) -> bool: ...

    async def read_window(self, session: str, seconds: Sequence[int]
                          ) -> tuple[dict[int, np.ndarray], bytes | None]: ...

    async def get_clip(self, session: str, clip_index: int) -> bytes | None: ...

    async def commit_clip(self, session: str, clip_index: int,
                          writes: Mapping[int, np.ndarray], response: bytes,
                          tracker: bytes | None = None, token: str | None = None
                          ) -> SessionRecord:
        """All or nothing. With `token` the commit is fenced: it applies only while that
        token holds the session's lock, and never after this call has given up on it;
        otherwise CommitFenced. The service always passes its token."""
        ...

    async def acquire(self, session: str, token: str, ttl_s: float) -> bool: ...

    async def renew(self, session: str, token: str, ttl_s: float) -> bool:
        """Extend a lock this token holds to `ttl_s` from now; False if it does not."""
        ...

    async def release(self, session: str, token: str) -> None: ...

    async def touch(self, session: str) -> None: ...

    async def count_sessions(self) -> int: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


def memory_key(model_version: str, session: str, part: str) -> str:
    """The one Redis key builder. `{session}` is the Cluster hash tag: a session's keys share
    a slot, so one Lua script may touch all of them; the model version namespaces memory,
    since features of another model are meaningless to this one."""
    return f"aia:{model_version}:{{{session}}}:{part}"


# Header: magic, format version, dtype code, ndim, then ndim uint32 dims; all little endian.
_MAGIC = b"AIAM"
_VERSION = 1
_DTYPE_F16 = 1
_HEAD = struct.Struct("<4sBBB")
_DIM = struct.Struct("<I")
_F16 = np.dtype("<f2")
_F16_MAX = float(np.finfo(np.float16).max)


def encode_vectors(vectors: np.ndarray) -> bytes:
    """[n, D] features (any float dtype, n may be 0) -> header + float16 raw bytes."""
    array = np.asarray(vectors)
    if array.ndim != 2:
        raise ValueError(f"memory vectors must be [n, D], got shape {list(array.shape)}")
    if array.size and not np.isfinite(array).all():
        raise ValueError("memory vectors contain NaN or inf; refuse to store them")
    if array.size and float(np.abs(array).max()) > _F16_MAX:
        raise ValueError(f"memory vectors exceed the float16 range (|x| > {_F16_MAX})")
    header = _HEAD.pack(_MAGIC, _VERSION, _DTYPE_F16, array.ndim)
    dims = b"".join(_DIM.pack(dim) for dim in array.shape)
    return header + dims + np.ascontiguousarray(array, dtype=_F16).tobytes()


def decode_vectors(blob: bytes) -> np.ndarray:
    """Header + float16 bytes -> float32 [n, D]; anything else raises CodecError."""
    if len(blob) < _HEAD.size:
        raise CodecError(f"memory blob too short ({len(blob)} bytes) for its header")
    magic, version, dtype_code, ndim = _HEAD.unpack_from(blob)
    if magic != _MAGIC:
        raise CodecError(f"not an AIA memory blob (magic {magic!r}, expected {_MAGIC!r})")
    if version != _VERSION or dtype_code != _DTYPE_F16 or ndim != 2:
        raise CodecError(f"unsupported memory blob: version {version}, dtype code "
                         f"{dtype_code}, ndim {ndim} (expected {_VERSION}, {_DTYPE_F16}, 2)")
    offset = _HEAD.size + ndim * _DIM.size
    if len(blob) < offset:
        raise CodecError("memory blob truncated inside its shape header")
    shape = tuple(_DIM.unpack_from(blob, _HEAD.size + i * _DIM.size)[0] for i in range(ndim))
    expected = offset + int(np.prod(shape)) * _F16.itemsize
    if len(blob) != expected:
        raise CodecError(f"memory blob of shape {list(shape)} must be {expected} bytes, "
                         f"got {len(blob)}")
    return np.frombuffer(blob, dtype=_F16, offset=offset).reshape(shape).astype(np.float32)
