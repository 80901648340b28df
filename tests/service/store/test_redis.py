"""RedisStore beyond the shared contract: round trips, key layout, failures, reconnects."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
from redis.crc import key_slot

from bench.serve import free_port
from service.store import CommitFenced, CommitUnknown, RedisStore, StoreUnavailable, memory_key
from tests.service.store.conftest import REDIS_URL, memory_of

Call = tuple[str, float, bool]


def recording_store(namespace: str, calls: list[Call], url: str = REDIS_URL,
                    timeout_s: float = 1.0, max_seconds: int = 600) -> RedisStore:
    return RedisStore(url, namespace, max_seconds, timeout_s,
                      observer=lambda command, seconds, ok: calls.append((command, seconds, ok)))


def test_every_call_is_one_round_trip(namespace: str) -> None:
    calls: list[Call] = []

    async def scenario() -> None:
        store = recording_store(namespace, calls)
        await store.ping()  # scripts load lazily on the first NOSCRIPT: keep that out
        await store.get_session("warm-up")
        calls.clear()
        await store.create_session("s", ttl_s=60, lookahead_s=0)
        writes = {second: np.ones((3, 16), np.float32) for second in range(20)}
        await store.commit_clip("s", 0, writes, b"response")
        assert len(await memory_of(store, "s", range(25))) == 20
        await store.commit_clip("s", 1, writes, b"response", tracker=b"tracks")
        memory, tracker = await store.read_window("s", range(25))
        assert (len(memory), tracker) == (20, b"tracks")
        assert await store.read_window("s", []) == ({}, b"tracks")
        await store.get_clip("s", 0)
        await store.get_session("s")
        await store.touch("s")
        await store.acquire("s", "t", 5)
        await store.release("s", "t")
        await store.count_sessions()
        await store.delete_session("s")
        await store.close()

    asyncio.run(scenario())
    assert [command for command, _, _ in calls] == [
        "create", "commit", "read", "commit", "read", "read", "get_clip", "get_session", "touch",
        "acquire", "release", "count_sessions", "delete"]
    assert all(ok and 0 <= seconds < 1 for _, seconds, ok in calls)


def test_session_keys_share_one_slot_and_the_sliding_ttl(namespace: str) -> None:
    async def scenario() -> None:
        store = RedisStore(REDIS_URL, namespace, 600, 1.0)
        await store.create_session("cam:1", ttl_s=100, lookahead_s=0)
        await store.commit_clip("cam:1", 0, {0: np.zeros((1, 4))}, b"r", tracker=b"t")
        await store.acquire("cam:1", "t", 50)
        await store.close()

    asyncio.run(scenario())
    client = redis.Redis.from_url(REDIS_URL)
    parts = ["meta", "mem", "secs", "clips", "seen", "track", "lock"]
    keys = [memory_key(namespace, "cam:1", part) for part in parts]
    assert all(client.exists(key) for key in keys)
    assert len({key_slot(key.encode()) for key in keys}) == 1
    ttls = [client.pttl(key) for key in keys]
    assert all(90_000 < ttl <= 100_000 for ttl in ttls[:6])
    assert 0 < ttls[6] <= 50_000
    client.close()


def test_delete_leaves_no_session_key_behind(namespace: str) -> None:
    async def scenario() -> None:
        store = RedisStore(REDIS_URL, namespace, 600, 1.0)
        await store.create_session("s", ttl_s=100, lookahead_s=0)
        await store.commit_clip("s", 0, {0: np.zeros((1, 4))}, b"r", tracker=b"t")
        await store.acquire("s", "t", 50)
        await store.delete_session("s")
        await store.close()

    asyncio.run(scenario())
    client = redis.Redis.from_url(REDIS_URL)
    assert list(client.scan_iter(match=f"aia:{namespace}:{{s}}:*")) == []
    client.close()


def test_corrupt_memory_degrades_instead_of_crashing(namespace: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    client.hset(memory_key(namespace, "s", "mem"), "3", b"\x80\x04pickle?")
    client.close()

    async def scenario() -> None:
        store = RedisStore(REDIS_URL, namespace, 600, 1.0)
        try:
            with pytest.raises(StoreUnavailable, match="corrupt memory"):
                await store.read_window("s", [3])
        finally:
            await store.close()

    asyncio.run(scenario())


def test_closed_port_fails_fast_with_store_unavailable() -> None:
    calls: list[Call] = []

    async def scenario() -> None:
        store = recording_store("v", calls, url="redis://127.0.0.1:1/0", timeout_s=0.5)
        for call in (store.get_session("s"), store.read_window("s", [0]),
                     store.commit_clip("s", 0, {}, b""), store.acquire("s", "t", 1)):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await call
            assert time.monotonic() - started < 1.0
        assert await store.ping() is False
        await store.close()

    asyncio.run(scenario())
    assert [ok for _, _, ok in calls] == [False] * 5


def test_a_silent_server_times_out_within_the_budget() -> None:
    async def scenario() -> float:
        async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1 << 16)  # read the command, never answer
            await asyncio.sleep(5)
            writer.close()

        server = await asyncio.start_server(swallow, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        store = RedisStore(f"redis://127.0.0.1:{port}/0", "v", 600, timeout_s=0.3)
        started = time.monotonic()
        try:
            with pytest.raises(StoreUnavailable):
                await store.get_clip("s", 0)
            return time.monotonic() - started
        finally:
            await store.close()
            server.close()

    assert asyncio.run(scenario()) < 1.0


class ThrowawayRedis:
    """A private redis-server with no persistence, stoppable and restartable on one port."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.1):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not listen on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=5)
            self.process = None


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def test_reconnects_when_redis_comes_back(throwaway_redis: ThrowawayRedis) -> None:
    async def scenario() -> None:
        url = f"redis://127.0.0.1:{throwaway_redis.port}/0"
        store = RedisStore(url, "v", 600, timeout_s=0.5)
        await store.create_session("s", ttl_s=60, lookahead_s=0)
        await store.commit_clip("s", 0, {0: np.ones((1, 4))}, b"r")

        throwaway_redis.stop()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await store.read_window("s", [0])
        assert time.monotonic() - started < 1.0
        assert await store.ping() is False

        throwaway_redis.start()  # empty again: no persistence
        assert await store.ping() is True
        assert await store.get_session("s") is None
        await store.create_session("s", ttl_s=60, lookahead_s=0)  # scripts reloaded by itself
        record = await store.commit_clip("s", 0, {0: np.ones((2, 4))}, b"r")
        assert record.stored_seconds == 1
        assert (await memory_of(store, "s", [0]))[0].shape == (2, 4)
        await store.close()

    asyncio.run(scenario())


def test_paused_redis_never_applies_a_commit_the_client_gave_up_on(
        throwaway_redis: ThrowawayRedis) -> None:
    """Redis stopped (SIGSTOP) while a commit is on the wire: the caller times out and is
    told nothing was stored; when Redis resumes the queued commit is fenced, not applied,
    and the lock the caller could not release expires with its short lease."""
    assert throwaway_redis.process is not None
    url = f"redis://127.0.0.1:{throwaway_redis.port}/0"

    async def scenario() -> None:
        store = RedisStore(url, "v", 600, timeout_s=0.3)
        await store.create_session("s", ttl_s=60, lookahead_s=0)
        assert await store.acquire("s", "token", ttl_s=2.0)
        throwaway_redis.process.send_signal(signal.SIGSTOP)
        try:
            with pytest.raises(StoreUnavailable):
                await store.commit_clip("s", 0, {0: np.ones((2, 4))}, b"first", token="token")
            with pytest.raises(StoreUnavailable):
                await store.release("s", "token")
            await asyncio.sleep(0.5)
        finally:
            throwaway_redis.process.send_signal(signal.SIGCONT)
        await store.close()
        reader = RedisStore(url, "v", 600, timeout_s=1.0)
        record = await reader.get_session("s")  # runs after the queued commit
        assert record is not None
        assert (record.clips_seen, record.stored_seconds, record.seen) == (0, 0, ())
        assert await reader.get_clip("s", 0) is None
        assert not await reader.acquire("s", "other", ttl_s=5)  # the lease still runs...
        await asyncio.sleep(1.2)
        assert await reader.acquire("s", "other", ttl_s=5)  # ...for seconds, not minutes
        await reader.close()

    asyncio.run(scenario())


def test_a_commit_within_its_deadline_applies(throwaway_redis: ThrowawayRedis) -> None:
    url = f"redis://127.0.0.1:{throwaway_redis.port}/0"

    async def scenario() -> None:
        store = RedisStore(url, "v", 600, timeout_s=0.3)
        await store.create_session("s", ttl_s=60, lookahead_s=0)
        assert await store.acquire("s", "token", ttl_s=5)
        await asyncio.sleep(0.5)  # longer than the timeout: the deadline counts from now
        record = await store.commit_clip("s", 0, {0: np.ones((2, 4))}, b"r", token="token")
        assert (record.clips_seen, record.stored_seconds) == (1, 1)
        await store.close()

    asyncio.run(scenario())


def test_a_commit_whose_connection_breaks_is_unknown_not_fenced(
        throwaway_redis: ThrowawayRedis) -> None:
    """Redis gone once the commit is on its way: it may have applied, and the caller is
    told so (CommitUnknown); Redis not there at all: it was never sent (CommitFenced)."""
    url = f"redis://127.0.0.1:{throwaway_redis.port}/0"

    async def scenario() -> None:
        store = RedisStore(url, "v", 600, timeout_s=2.0)
        await store.create_session("s", ttl_s=60, lookahead_s=0)
        assert await store.acquire("s", "token", ttl_s=5)
        assert throwaway_redis.process is not None
        throwaway_redis.process.send_signal(signal.SIGSTOP)  # the commit waits in its socket
        commit = asyncio.create_task(
            store.commit_clip("s", 0, {0: np.ones((1, 4))}, b"r", token="token"))
        await asyncio.sleep(0.2)
        throwaway_redis.process.kill()  # the connection breaks under the sent commit
        throwaway_redis.process.wait()
        throwaway_redis.process = None
        with pytest.raises(CommitUnknown):
            await commit
        with pytest.raises(CommitFenced):  # nothing listens: the commit is never sent
            await store.commit_clip("s", 1, {}, b"r", token="token")
        await store.close()

    asyncio.run(scenario())


def test_a_commit_without_a_reply_is_settled_by_reading_it_back(
        throwaway_redis: ThrowawayRedis) -> None:
    """SessionSteps: Redis stalls under the commit, so no reply comes in time. Still stalled
    at the follow-up read: `unknown`. Back by then: the commit reached Redis after its
    deadline, was fenced, and the read says `not_stored` for good."""
    from service.schemas import CommitOutcome
    from service.session_steps import SessionSteps

    assert throwaway_redis.process is not None
    process = throwaway_redis.process
    url = f"redis://127.0.0.1:{throwaway_redis.port}/0"

    class ResumesBeforeTheRead(RedisStore):
        async def get_clip(self, session: str, clip_index: int) -> bytes | None:
            process.send_signal(signal.SIGCONT)
            return await super().get_clip(session, clip_index)

    async def commit_while_stalled(store: RedisStore, index: int) -> CommitOutcome:
        steps = SessionSteps(store, "s", lock_ttl_s=30)
        await steps.record()
        await steps.lock()
        process.send_signal(signal.SIGSTOP)
        try:
            return await steps.commit(index, {index: np.ones((1, 4), np.float32)}, b"x", None)
        finally:
            process.send_signal(signal.SIGCONT)
            await steps.release()

    async def scenario() -> None:
        stalled = RedisStore(url, "v", 600, timeout_s=0.3)
        await stalled.create_session("s", ttl_s=60, lookahead_s=0)
        assert await commit_while_stalled(stalled, 0) is CommitOutcome.unknown
        await stalled.close()
        resumed = ResumesBeforeTheRead(url, "v", 600, timeout_s=0.3)
        assert await commit_while_stalled(resumed, 1) is CommitOutcome.not_stored
        await asyncio.sleep(0.3)
        assert await resumed.get_clip("s", 1) is None  # and it never lands
        await resumed.close()

    asyncio.run(scenario())
