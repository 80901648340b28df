"""Per-session memory stores: the contract (base), in-process (local) and Redis (redis)."""

from service.store.base import (
    CACHED_RESPONSES,
    SEEN_CAP,
    CodecError,
    CommitFenced,
    CommitUnknown,
    MemoryStore,
    SessionRecord,
    StoreUnavailable,
    decode_vectors,
    encode_vectors,
    memory_key,
)
from service.store.local import LocalStore
from service.store.redis import RedisStore

__all__ = [
    "CACHED_RESPONSES",
    "SEEN_CAP",
    "CodecError",
    "CommitFenced",
    "CommitUnknown",
    "LocalStore",
    "MemoryStore",
    "RedisStore",
    "SessionRecord",
    "StoreUnavailable",
    "decode_vectors",
    "encode_vectors",
    "memory_key",
]
