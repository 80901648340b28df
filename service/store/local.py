"""The in-process memory store, the embedded default when no Redis URL is configured.

Bounded: at most `max_sessions` sessions (least recently used evicted first, expired ones
before that), `max_seconds` seconds of memory each. Methods never await inside, so each one
is atomic on the event loop: no lock needed for asyncio callers. Not for use across threads.
"""

from __future__ import annotations

import bisect
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from service.errors import SessionExists, SessionNotFound
from service.store.base import (
    CACHED_RESPONSES,
    SEEN_CAP,
    CommitFenced,
    SessionRecord,
    decode_vectors,
    encode_vectors,
)


@dataclass
class _Session:
    created_at: float
    ttl_s: int
    lookahead_s: int
    deadline: float  # time.monotonic() past which the session is gone
    clips_seen: int = 0
    last_index: int = -1
    seen: list[int] = field(default_factory=list)  # ascending
    seen_floor: int = -1  # highest index dropped from `seen`; at or below it: "seen"
    memory: dict[int, bytes] = field(default_factory=dict)  # second -> encoded [n, D]
    responses: dict[int, bytes] = field(default_factory=dict)  # clip index -> response
    tracker: bytes | None = None  # the person tracker's state, opaque here

    def refresh(self) -> None:
        self.deadline = time.monotonic() + self.ttl_s

    def was_seen(self, clip_index: int) -> bool:
        position = bisect.bisect_left(self.seen, clip_index)
        in_seen = position < len(self.seen) and self.seen[position] == clip_index
        return in_seen or clip_index <= self.seen_floor


class LocalStore:
    """`MemoryStore` in this process; `ttl_s` is the default for `create_session(ttl_s=0)`."""

    def __init__(self, model_version: str, ttl_s: int, max_seconds: int,
                 max_sessions: int) -> None:
        self.model_version = model_version
        self.ttl_s = ttl_s
        self.max_seconds = max_seconds
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._locks: dict[str, tuple[str, float]] = {}  # session -> (token, monotonic deadline)

    async def create_session(self, session: str, ttl_s: int, lookahead_s: int
                             ) -> SessionRecord:
        if self._live(session) is not None:
            raise SessionExists(f"session {session!r} exists; pick another id or delete it")
        self._sweep()
        while len(self._sessions) >= self.max_sessions:
            self._sessions.popitem(last=False)  # least recently used
        ttl = ttl_s if ttl_s > 0 else self.ttl_s
        state = _Session(created_at=time.time(), ttl_s=ttl, lookahead_s=lookahead_s,
                         deadline=time.monotonic() + ttl)
        self._sessions[session] = state
        return self._record(session, state)

    async def get_session(self, session: str) -> SessionRecord | None:
        state = self._live(session)
        return None if state is None else self._record(session, state)

    async def delete_session(self, session: str) -> bool:
        self._locks.pop(session, None)
        existed = self._live(session) is not None
        self._sessions.pop(session, None)
        return existed

    async def read_window(self, session: str, seconds: Sequence[int]
                          ) -> tuple[dict[int, np.ndarray], bytes | None]:
        """Memory of `seconds` (missing ones absent) and the tracker state, at one instant."""
        state = self._live(session)
        if state is None:
            return {}, None
        memory = {second: decode_vectors(state.memory[second])
                  for second in seconds if second in state.memory}
        return memory, state.tracker

    async def get_clip(self, session: str, clip_index: int) -> bytes | None:
        state = self._live(session)
        return None if state is None else state.responses.get(clip_index)

    async def commit_clip(self, session: str, clip_index: int,
                          writes: Mapping[int, np.ndarray], response: bytes,
                          tracker: bytes | None = None, token: str | None = None
                          ) -> SessionRecord:
        """`tracker`: the new tracker state, stored only if this commit applies; None keeps
        the stored one. In-process there is no reply to lose: the fence is the lock."""
        state = self._live(session)
        if state is None:
            raise SessionNotFound(f"session {session!r} does not exist or expired; create it")
        if token is not None and not self._holds(session, token):
            raise CommitFenced(f"clip {clip_index} of session {session!r} no longer holds "
                               "its lock; not stored")
        if state.was_seen(clip_index):
            return self._record(session, state)
        encoded = {int(second): encode_vectors(vectors) for second, vectors in writes.items()}
        state.memory.update(encoded)
        excess = len(state.memory) - self.max_seconds
        if excess > 0:
            for second in sorted(state.memory)[:excess]:
                del state.memory[second]
        bisect.insort(state.seen, clip_index)
        if len(state.seen) > SEEN_CAP:
            dropped = state.seen[: len(state.seen) - SEEN_CAP]
            state.seen_floor = max(state.seen_floor, dropped[-1])
            del state.seen[: len(dropped)]
        state.responses[clip_index] = response
        if tracker is not None:
            state.tracker = tracker
        if len(state.responses) > CACHED_RESPONSES:
            del state.responses[min(state.responses)]
        state.clips_seen += 1
        state.last_index = max(state.last_index, clip_index)
        state.refresh()
        return self._record(session, state)

    async def acquire(self, session: str, token: str, ttl_s: float) -> bool:
        now = time.monotonic()
        held = self._locks.get(session)
        if held is not None and held[1] > now:
            return False
        self._locks[session] = (token, now + ttl_s)
        return True

    async def renew(self, session: str, token: str, ttl_s: float) -> bool:
        if not self._holds(session, token):
            return False
        self._locks[session] = (token, time.monotonic() + ttl_s)
        return True

    def _holds(self, session: str, token: str) -> bool:
        held = self._locks.get(session)
        return held is not None and held[0] == token and held[1] > time.monotonic()

    async def release(self, session: str, token: str) -> None:
        held = self._locks.get(session)
        if held is not None and held[0] == token:
            del self._locks[session]

    async def touch(self, session: str) -> None:
        state = self._live(session)
        if state is not None:
            state.refresh()

    async def count_sessions(self) -> int:
        self._sweep()
        return len(self._sessions)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._sessions.clear()
        self._locks.clear()

    def _live(self, session: str) -> _Session | None:
        """The session if it has not expired, marked most recently used."""
        state = self._sessions.get(session)
        if state is None:
            return None
        if state.deadline <= time.monotonic():
            del self._sessions[session]
            return None
        self._sessions.move_to_end(session)
        return state

    def _sweep(self) -> None:
        now = time.monotonic()
        for session in [s for s, state in self._sessions.items() if state.deadline <= now]:
            del self._sessions[session]
        for session in [s for s, (_, deadline) in self._locks.items() if deadline <= now]:
            del self._locks[session]

    def _record(self, session: str, state: _Session) -> SessionRecord:
        return SessionRecord(id=session, created_at=state.created_at, ttl_s=state.ttl_s,
                             model_version=self.model_version, clips_seen=state.clips_seen,
                             last_index=state.last_index, seen=tuple(state.seen),
                             stored_seconds=len(state.memory), lookahead_s=state.lookahead_s)
