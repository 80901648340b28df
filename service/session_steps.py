"""One clip's conversation with the memory store, step by step.

A store that fails (`StoreUnavailable`) never fails the request: the step that met it
returns its empty value, the conversation is marked degraded, and the steps after it no
longer ask the store. The engine reads `degraded` to say so in the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from service.errors import ClipInFlight, SessionExists, SessionNotFound
from service.schemas import CommitOutcome
from service.store import CommitUnknown, MemoryStore, SessionRecord, StoreUnavailable


@dataclass(frozen=True)
class StoredWindow:
    """What a session holds for a clip: memory {second: [n,D]} and the tracker's state
    (None: nothing stored; both None when the store was not reached)."""

    memory: dict[int, np.ndarray] | None
    tracker: bytes | None


class SessionSteps:
    def __init__(self, store: MemoryStore, session: str, lock_ttl_s: float) -> None:
        self.store, self.session, self.lock_ttl_s = store, session, lock_ttl_s
        self.token = uuid.uuid4().hex
        self.degraded = False
        self.locked = False
        self._keeper: asyncio.Task[None] | None = None

    async def record(self) -> SessionRecord | None:
        """The session's record (None: degraded); a session that does not exist is a 404."""
        try:
            record = await self.store.get_session(self.session)
        except StoreUnavailable:
            self.degraded = True
            return None
        if record is None:
            raise SessionNotFound(f"session {self.session!r} does not exist or expired; "
                                  "create it with POST /v1/sessions")
        return record

    async def take_over(self, older: SessionRecord) -> None:
        """Create this session again under this store's model version, with the TTL and
        lookahead it had under `older`'s (another replica may have just done so)."""
        try:
            await self.store.create_session(self.session, older.ttl_s, older.lookahead_s)
        except SessionExists:
            pass
        except StoreUnavailable:
            self.degraded = True

    async def lock(self) -> None:
        """One clip of a session at a time; a second one in flight is a 409. The lock is a
        lease kept alive while this clip runs, so it outlives a lost release by at most one
        lease, not a whole request timeout."""
        if self.degraded:
            return
        try:
            self.locked = await self.store.acquire(self.session, self.token, self.lock_ttl_s)
        except StoreUnavailable:
            self.degraded = True
            return
        if not self.locked:
            wait_s = max(1, math.ceil(self.lock_ttl_s / 3))
            raise ClipInFlight(f"session {self.session!r} has a clip in flight; send its "
                               "clips one at a time (retry when the previous one answered)",
                               headers={"Retry-After": str(wait_s)})
        self._keeper = asyncio.create_task(self._keep_lock(), name="aia-session-lease")

    async def _keep_lock(self) -> None:
        """Renew the lease every third of it; a renewal the store misses is retried at the
        next beat (a lost lease only means the commit is fenced, never a wrong write)."""
        while True:
            await asyncio.sleep(self.lock_ttl_s / 3)
            with contextlib.suppress(StoreUnavailable):
                if not await self.store.renew(self.session, self.token, self.lock_ttl_s):
                    return

    async def cached_answer(self, clip_index: int) -> bytes | None:
        """The answer already given to this clip index (a retry), or None."""
        if self.degraded:
            return None
        try:
            return await self.store.get_clip(self.session, clip_index)
        except StoreUnavailable:
            self.degraded = True
            return None

    async def read(self, seconds: Sequence[int]) -> StoredWindow:
        """Memory of `seconds` and the tracker state, in one round trip."""
        if self.degraded:
            return StoredWindow(None, None)
        try:
            memory, tracker = await self.store.read_window(self.session, seconds)
        except StoreUnavailable:
            self.degraded = True
            return StoredWindow(None, None)
        return StoredWindow(memory, tracker)

    async def commit(self, clip_index: int, own: Mapping[int, np.ndarray], body: bytes,
                     tracker: bytes | None) -> CommitOutcome:
        """Memory, answer and tracker of this clip, all or nothing: stored, not stored (and
        never will be: fenced or never sent), or unknown (the connection broke after it was
        sent; a retry of the clip finds out)."""
        if self.degraded:
            return CommitOutcome.not_stored
        try:
            await self.store.commit_clip(self.session, clip_index, own, body, tracker=tracker,
                                         token=self.token if self.locked else None)
        except CommitUnknown as err:
            self.degraded = True
            return await self._settle(clip_index, err.settle_at)
        except StoreUnavailable:  # CommitFenced included
            self.degraded = True
            return CommitOutcome.not_stored
        return CommitOutcome.stored

    async def _settle(self, clip_index: int, settle_at: float) -> CommitOutcome:
        """A commit whose reply never came: read its answer back once its deadline has
        passed (`settle_at`; a broken connection fails sooner than that), so what the read
        sees is final: there, it was stored; absent, it never will be."""
        if not self.locked:  # no token, no deadline: a late apply stays possible
            return CommitOutcome.unknown
        await asyncio.sleep(max(0.0, settle_at - time.monotonic()))
        try:
            stored = await self.store.get_clip(self.session, clip_index)
        except StoreUnavailable:
            return CommitOutcome.unknown
        if stored is None:
            return CommitOutcome.not_stored
        self.degraded = False  # it was stored after all: the answer's memory stands
        return CommitOutcome.stored

    async def release(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
            self._keeper = None
        if self.locked:
            with contextlib.suppress(StoreUnavailable):
                await self.store.release(self.session, self.token)
            self.locked = False
