"""Session memory in Redis (redis.asyncio): one round trip per call, atomic commits.

Keys of a session (all built by `memory_key`, all in the `{session}` hash slot): meta, mem,
secs, clips, seen, track (see redis_scripts) and lock. Sessions are counted in a registry sorted set
(member: session id, score: expiry deadline) kept under its own hash tag, updated in the same
pipeline as create/commit/touch/delete: `count_sessions` is a ZREMRANGEBYSCORE + ZCARD, no
SCAN. It is approximate: a commit refreshes the registry only once this client knows the
session's TTL (learned from create/get_session/commit).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.retry import Retry

from service.errors import SessionExists, SessionNotFound
from service.store import redis_scripts as lua
from service.store.base import (
    CACHED_RESPONSES,
    SEEN_CAP,
    CodecError,
    CommitFenced,
    CommitUnknown,
    SessionRecord,
    StoreUnavailable,
    decode_vectors,
    encode_vectors,
    memory_key,
)

T = TypeVar("T")
Observer = Callable[[str, float, bool], None]

_SESSION_PARTS = ("meta", "mem", "secs", "clips", "seen", "track")  # the scripts' order
_KEYS = len(_SESSION_PARTS)
_REGISTRY_TAG = "#registry"  # '#' is not allowed in session ids: never collides
_KNOWN_TTLS = 4096
COMMIT_MARGIN_S = 0.25  # a commit must land this long before its caller gives up


def commit_failure(err: StoreUnavailable, give_up: float) -> StoreUnavailable:
    """What a failed commit means for its clip. No connection: it was never sent
    (CommitFenced). Anything else (no reply in time, a connection that broke under it): it
    may have applied before its deadline, with the reply lost or late (CommitUnknown); the
    deadline only promises it cannot apply after `give_up` (a connection can break well
    before it), so a read from then on tells which (SessionSteps.commit asks)."""
    cause = err.__cause__
    if isinstance(cause, RedisConnectionError) and "connecting to" in str(cause):
        return CommitFenced(f"{err}; the commit was never sent")
    return CommitUnknown(f"{err}; the commit may have applied", settle_at=give_up)


class RedisStore:
    """`MemoryStore` on Redis. Failures (down, timeout) raise StoreUnavailable within about
    `timeout_s`; the connection pool reconnects on the next call once Redis is back."""

    def __init__(self, url: str, model_version: str, max_seconds: int, timeout_s: float,
                 observer: Observer | None = None) -> None:
        self.model_version = model_version
        self.max_seconds = max_seconds
        self.timeout_s = timeout_s
        self._observer = observer
        # No client-side retries: a retried SET NX or commit after a lost reply would lie,
        # and retries multiply the time to fail; the engine degrades instead.
        self._client = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0), decode_responses=False)
        self._registry = memory_key(model_version, _REGISTRY_TAG, "sessions")
        self._ttls: OrderedDict[str, int] = OrderedDict()
        # token -> (server ms, local monotonic s) of its last acquire/renew reply: the
        # server's clock read through this client's, for the commit's deadline
        self._anchors: OrderedDict[str, tuple[int, float]] = OrderedDict()

    async def create_session(self, session: str, ttl_s: int, lookahead_s: int
                             ) -> SessionRecord:
        now = time.time()

        async def call() -> list[Any]:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.evalsha(lua.CREATE.sha, _KEYS, *self._keys(session), repr(now), ttl_s,
                             lookahead_s)
                pipe.zremrangebyscore(self._registry, "-inf", now)
                pipe.zadd(self._registry, {session: now + ttl_s}, gt=True)
                return await pipe.execute()

        raw = (await self._round_trip("create", call))[0]
        if raw is None:
            raise SessionExists(f"session {session!r} exists; pick another id or delete it")
        return self._record(session, raw)

    async def get_session(self, session: str) -> SessionRecord | None:
        keys = self._keys(session)
        raw = await self._round_trip(
            "get_session", lambda: self._client.evalsha(lua.RECORD.sha, _KEYS, *keys))
        return None if raw is None else self._record(session, raw)

    async def delete_session(self, session: str) -> bool:
        self._ttls.pop(session, None)

        async def call() -> list[Any]:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.unlink(self._key(session, "meta"))
                pipe.unlink(*self._keys(session)[1:], self._key(session, "lock"))
                pipe.zrem(self._registry, session)
                return await pipe.execute()

        return bool((await self._round_trip("delete", call))[0])

    async def read_window(self, session: str, seconds: Sequence[int]
                          ) -> tuple[dict[int, np.ndarray], bytes | None]:
        """Memory of `seconds` and the tracker state: HMGET + GET pipelined, one round trip.

        Not MULTI/EXEC: a full Redis under `noeviction` refuses every command queued in a
        transaction, reads included, and reads must keep working there. A commit is one Lua
        script, so at worst the two replies straddle one whole commit; the session lock
        keeps a session's reads and commits in sequence anyway."""
        wanted = [int(second) for second in seconds]

        async def call() -> list[Any]:
            async with self._client.pipeline(transaction=False) as pipe:
                if wanted:
                    pipe.hmget(self._key(session, "mem"), wanted)
                pipe.get(self._key(session, "track"))
                return await pipe.execute()

        *found, tracker = await self._round_trip("read", call)
        blobs = found[0] if found else []
        try:
            memory = {second: decode_vectors(blob)
                      for second, blob in zip(wanted, blobs, strict=True) if blob is not None}
        except CodecError as exc:
            # Someone else's bytes under our key: treat as a store failure, so the request
            # degrades to no memory instead of failing.
            raise StoreUnavailable(f"corrupt memory of session {session!r}: {exc}") from exc
        return memory, tracker

    async def get_clip(self, session: str, clip_index: int) -> bytes | None:
        return await self._round_trip(
            "get_clip", lambda: self._client.hget(self._key(session, "clips"), str(clip_index)))

    async def commit_clip(self, session: str, clip_index: int,
                          writes: Mapping[int, np.ndarray], response: bytes,
                          tracker: bytes | None = None, token: str | None = None
                          ) -> SessionRecord:
        """`tracker`: the new tracker state, set in the same script only if this commit
        applies; None (sent as '', never a state: states start with a magic) keeps it.
        `token`: fenced by the lock and by a deadline on the server's clock that falls
        before this call gives up, so a commit held up (Redis paused, a slow network)
        cannot land after the caller was told it was not stored."""
        give_up = time.monotonic() + self.timeout_s  # the deadline falls before this
        args: list[Any] = [str(clip_index), self.max_seconds, SEEN_CAP, CACHED_RESPONSES,
                           response, tracker or b"", token or "",
                           self._deadline_ms(token, give_up)]
        for second, vectors in writes.items():
            args += [str(int(second)), encode_vectors(vectors)]
        ttl = self._ttls.get(session)
        keys = [*self._keys(session), self._key(session, "lock")]

        async def call() -> list[Any]:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.evalsha(lua.COMMIT.sha, len(keys), *keys, *args)
                if ttl is not None:  # XX: a deleted session is not brought back
                    pipe.zadd(self._registry, {session: time.time() + ttl}, xx=True, gt=True)
                return await pipe.execute()

        try:
            raw = (await self._round_trip("commit", call))[0]
        except StoreUnavailable as err:
            raise commit_failure(err, give_up) from err
        if raw is None:
            raise SessionNotFound(f"session {session!r} does not exist or expired; create it")
        if raw == b"fenced":
            raise CommitFenced(f"clip {clip_index} of session {session!r} was not stored: its "
                               "lock had passed on or the commit arrived too late")
        return self._record(session, raw)

    def _deadline_ms(self, token: str | None, give_up: float) -> str:
        """The server time after which this commit must not apply: `give_up` (monotonic,
        when this client stops waiting) read on the server's clock through the token's
        anchor, less a margin for the reply's way back. '' without an anchor."""
        anchor = self._anchors.get(token) if token is not None else None
        if anchor is None:
            return ""
        server_ms, local_s = anchor
        give_up_s = give_up - local_s
        margin_s = min(COMMIT_MARGIN_S, self.timeout_s / 4)
        return str(server_ms + int((give_up_s - margin_s) * 1000))

    async def acquire(self, session: str, token: str, ttl_s: float) -> bool:
        return await self._lease("acquire", lua.ACQUIRE, session, token, ttl_s)

    async def renew(self, session: str, token: str, ttl_s: float) -> bool:
        return await self._lease("renew", lua.RENEW, session, token, ttl_s)

    async def _lease(self, command: str, script: lua.LuaScript, session: str, token: str,
                     ttl_s: float) -> bool:
        lease_ms = max(1, round(ttl_s * 1000))
        server_ms = await self._round_trip(command, lambda: self._client.evalsha(
            script.sha, 1, self._key(session, "lock"), token, lease_ms))
        if server_ms is None:
            return False
        # the reply left the server at server_ms, at the latest now: anchoring it to now
        # can only make the deadline earlier, never later
        self._anchors[token] = (int(server_ms), time.monotonic())
        self._anchors.move_to_end(token)
        while len(self._anchors) > _KNOWN_TTLS:
            self._anchors.popitem(last=False)
        return True

    async def release(self, session: str, token: str) -> None:
        self._anchors.pop(token, None)
        await self._round_trip("release", lambda: self._client.evalsha(
            lua.RELEASE.sha, 1, self._key(session, "lock"), token))

    async def touch(self, session: str) -> None:
        ttl = self._ttls.get(session)

        async def call() -> list[Any]:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.evalsha(lua.TOUCH.sha, _KEYS, *self._keys(session))
                if ttl is not None:
                    pipe.zadd(self._registry, {session: time.time() + ttl}, xx=True, gt=True)
                return await pipe.execute()

        await self._round_trip("touch", call)

    async def count_sessions(self) -> int:
        async def call() -> list[Any]:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.zremrangebyscore(self._registry, "-inf", time.time())
                pipe.zcard(self._registry)
                return await pipe.execute()

        return int((await self._round_trip("count_sessions", call))[1])

    async def ping(self) -> bool:
        try:
            return bool(await self._round_trip("ping", self._client.ping))
        except StoreUnavailable:
            return False

    async def close(self) -> None:
        await self._client.aclose()

    def _key(self, session: str, part: str) -> str:
        return memory_key(self.model_version, session, part)

    def _keys(self, session: str) -> list[str]:
        return [self._key(session, part) for part in _SESSION_PARTS]

    async def _round_trip(self, command: str, call: Callable[[], Awaitable[T]]) -> T:
        """One request/reply, timed and observed; Redis trouble becomes StoreUnavailable.
        After a Redis restart the scripts are gone: load them and retry once."""
        for attempt in range(2):
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self.timeout_s):
                    result = await call()
            except NoScriptError:
                self._observe(command, started, ok=False)
                if attempt:
                    raise StoreUnavailable(f"redis {command}: scripts did not load") from None
                await self._load_scripts()
                continue
            except (RedisError, OSError, TimeoutError) as exc:
                self._observe(command, started, ok=False)
                reason = str(exc) or type(exc).__name__
                raise StoreUnavailable(f"redis {command} failed: {reason}") from exc
            self._observe(command, started, ok=True)
            return result
        raise AssertionError("unreachable")

    async def _load_scripts(self) -> None:
        async def call() -> list[Any]:
            async with self._client.pipeline(transaction=False) as pipe:
                for script in lua.ALL:
                    pipe.script_load(script.source)
                return await pipe.execute()

        await self._round_trip("script_load", call)

    def _observe(self, command: str, started: float, ok: bool) -> None:
        if self._observer is not None:
            self._observer(command, time.perf_counter() - started, ok)

    def _record(self, session: str, raw: list[Any]) -> SessionRecord:
        created_at, ttl_s, lookahead_s, clips_seen, last_index, stored_seconds, seen = raw
        record = SessionRecord(
            id=session, created_at=float(created_at), ttl_s=int(ttl_s),
            model_version=self.model_version, clips_seen=int(clips_seen),
            last_index=int(last_index), seen=tuple(sorted(int(i) for i in seen)),
            stored_seconds=int(stored_seconds), lookahead_s=int(lookahead_s))
        self._ttls[session] = record.ttl_s
        self._ttls.move_to_end(session)
        while len(self._ttls) > _KNOWN_TTLS:
            self._ttls.popitem(last=False)
        return record
