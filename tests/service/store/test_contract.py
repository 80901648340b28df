"""One contract, two stores: every test runs on LocalStore and on RedisStore (real Redis)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from service.errors import SessionExists, SessionNotFound
from service.store import (
    CACHED_RESPONSES,
    SEEN_CAP,
    CommitFenced,
    MemoryStore,
    SessionRecord,
    StoreUnavailable,
)
from tests.service.store.conftest import StoreFactory, memory_of, run_with

D = 8


def features(persons: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(persons, D)).astype(np.float32)


def as_stored(vectors: np.ndarray) -> np.ndarray:
    return vectors.astype(np.float16).astype(np.float32)


def test_create_get_delete(make_store: StoreFactory) -> None:
    async def scenario(store: MemoryStore) -> None:
        assert isinstance(store, MemoryStore)
        assert await store.ping()
        assert await store.count_sessions() == 0
        created = await store.create_session("cam-1", ttl_s=60, lookahead_s=2)
        assert created.id == "cam-1"
        assert (created.ttl_s, created.lookahead_s, created.clips_seen) == (60, 2, 0)
        assert (created.last_index, created.seen, created.stored_seconds) == (-1, (), 0)
        assert created.model_version
        assert await store.get_session("cam-1") == created
        assert await store.get_session("cam-2") is None
        assert await store.count_sessions() == 1
        assert await store.delete_session("cam-1") is True
        assert await store.get_session("cam-1") is None
        assert await store.delete_session("cam-1") is False
        assert await store.count_sessions() == 0

    run_with(make_store, scenario)


def test_duplicate_create_raises_session_exists(make_store: StoreFactory) -> None:
    async def scenario(store: MemoryStore) -> None:
        first = await store.create_session("s", ttl_s=60, lookahead_s=0)
        with pytest.raises(SessionExists):
            await store.create_session("s", ttl_s=30, lookahead_s=1)
        assert await store.get_session("s") == first

    run_with(make_store, scenario)


def test_read_commit_round_trip_for_zero_one_and_many_persons(make_store: StoreFactory) -> None:
    writes = {10: features(0, 1), 11: features(1, 2), 12: features(9, 3)}

    async def scenario(store: MemoryStore) -> None:
        await store.create_session("s", ttl_s=60, lookahead_s=0)
        record = await store.commit_clip("s", 0, writes, b'{"clip": 0}')
        assert (record.clips_seen, record.last_index, record.seen) == (1, 0, (0,))
        assert record.stored_seconds == 3
        memory = await memory_of(store, "s", [9, 10, 11, 12, 13])
        assert sorted(memory) == [10, 11, 12]  # never-written seconds are absent
        for second, vectors in writes.items():
            assert memory[second].dtype == np.float32
            assert memory[second].shape == vectors.shape
            np.testing.assert_array_equal(memory[second], as_stored(vectors))
        assert await memory_of(store, "s", []) == {}
        assert await memory_of(store, "other", [10]) == {}
        assert await store.get_clip("s", 0) == b'{"clip": 0}'
        assert await store.get_clip("s", 1) is None

    run_with(make_store, scenario)


def test_commit_is_idempotent_per_clip_index(make_store: StoreFactory) -> None:
    async def scenario(store: MemoryStore) -> None:
        await store.create_session("s", ttl_s=60, lookahead_s=0)
        first = await store.commit_clip("s", 0, {0: features(2, 1)}, b"first")
        again = await store.commit_clip("s", 0, {0: features(2, 9), 1: features(1, 9)}, b"again")
        assert again == first
        memory = await memory_of(store, "s", [0, 1])
        assert sorted(memory) == [0]
        np.testing.assert_array_equal(memory[0], as_stored(features(2, 1)))
        assert await store.get_clip("s", 0) == b"first"

    run_with(make_store, scenario)


def test_seen_reports_gaps_and_late_clips(make_store: StoreFactory) -> None:
    async def scenario(store: MemoryStore) -> SessionRecord:
        await store.create_session("s", ttl_s=60, lookahead_s=0)
        await store.commit_clip("s", 0, {}, b"0")
        gap = await store.commit_clip("s", 3, {}, b"3")
        assert (gap.seen, gap.last_index, gap.clips_seen) == ((0, 3), 3, 2)
        return await store.commit_clip("s", 1, {}, b"1")

    late = run_with(make_store, scenario)
    assert (late.seen, late.last_index, late.clips_seen) == ((0, 1, 3), 3, 3)


def test_commit_to_a_missing_session_raises_not_found(make_store: StoreFactory) -> None:
    async def scenario(store: MemoryStore) -> None:
        with pytest.raises(SessionNotFound):
            await store.commit_clip("ghost", 0, {0: features(1, 0)}, b"x")
        assert await memory_of(store, "ghost", [0]) == {}

    run_with(make_store, scenario)


def test_cap_evicts_the_oldest_seconds(make_store: StoreFactory) -> None:
    async def scenario(store: MemoryStore) -> None:
        await store.create_session("s", ttl_s=60, lookahead_s=0)
        for second in range(5):
            record = await store.commit_clip("s", second, {second: features(1, second)}, b"")
        assert record.stored_seconds == 3
        memory = await memory_of(store, "s", range(6))
        assert sorted(memory) == [2, 3, 4]
        np.testing.assert_array_equal(memory[4], as_stored(features(1, 4)))
        # a write older than everything kept is itself the oldest: evicted at once
        record = await store.commit_clip("s", 5, {1: features(1, 1)}, b"")
        assert sorted(await memory_of(store, "s", range(6))) == [2, 3, 4]
        assert record.stored_seconds == 3

    run_with(make_store, scenario, max_seconds=3)


def test_cached_responses_and_seen_are_capped(make_store: StoreFactory) -> None:
    async def scenario(store: MemoryStore) -> None:
        await store.create_session("s", ttl_s=60, lookahead_s=0)
        for index in range(SEEN_CAP + 1):
            record = await store.commit_clip("s", index, {}, b"r%d" % index)
        assert record.seen == tuple(range(1, SEEN_CAP + 1))
        assert record.clips_seen == SEEN_CAP + 1
        assert await store.get_clip("s", SEEN_CAP) == b"r%d" % SEEN_CAP
        assert await store.get_clip("s", SEEN_CAP + 1 - CACHED_RESPONSES) is not None
        assert await store.get_clip("s", SEEN_CAP - CACHED_RESPONSES) is None
        # an index dropped from `seen` still counts as seen: no second write
        assert await store.commit_clip("s", 0, {0: features(1, 0)}, b"late") == record
        assert await memory_of(store, "s", [0]) == {}

    run_with(make_store, scenario)


def test_ttl_slides_and_expiry_removes_everything(make_store: StoreFactory) -> None:
    async def scenario(store: MemoryStore) -> None:
        await store.create_session("s", ttl_s=1, lookahead_s=0)
        await asyncio.sleep(0.6)
        await store.commit_clip("s", 0, {0: features(1, 0)}, b"r", tracker=b"T")
        await asyncio.sleep(0.6)
        await store.touch("s")
        await asyncio.sleep(0.6)  # 1.8 s after create, 0.6 s after the last refresh
        assert (await store.get_session("s")).clips_seen == 1
        assert sorted(await memory_of(store, "s", [0])) == [0]
        await asyncio.sleep(1.2)
        assert await store.get_session("s") is None
        assert await store.read_window("s", [0]) == ({}, None)
        assert await store.get_clip("s", 0) is None
        assert await store.count_sessions() == 0
        with pytest.raises(SessionNotFound):
            await store.commit_clip("s", 1, {}, b"")
        fresh = await store.create_session("s", ttl_s=60, lookahead_s=0)
        assert (fresh.clips_seen, fresh.stored_seconds) == (0, 0)

    run_with(make_store, scenario)


def test_lock_is_exclusive_and_released_only_by_its_owner(make_store: StoreFactory) -> None:
    async def scenario(store: MemoryStore) -> None:
        assert await store.acquire("s", "token-a", ttl_s=5)
        assert not await store.acquire("s", "token-b", ttl_s=5)
        await store.release("s", "token-b")  # not the owner: no effect
        assert not await store.acquire("s", "token-b", ttl_s=5)
        assert await store.acquire("t", "token-b", ttl_s=5)  # locks are per session
        await store.release("s", "token-a")
        assert await store.acquire("s", "token-b", ttl_s=5)
        assert await store.acquire("u", "token-c", ttl_s=0.2)
        await asyncio.sleep(0.3)  # an abandoned lock expires
        assert await store.acquire("u", "token-d", ttl_s=5)

    run_with(make_store, scenario)


def test_lease_renews_only_for_its_holder(make_store: StoreFactory) -> None:
    async def scenario(store: MemoryStore) -> None:
        assert await store.acquire("s", "token-a", ttl_s=0.3)
        assert not await store.renew("s", "token-b", ttl_s=5)  # not the holder
        assert await store.renew("s", "token-a", ttl_s=5)
        await asyncio.sleep(0.4)  # past the first lease: the renewal kept it
        assert not await store.acquire("s", "token-b", ttl_s=5)
        await store.release("s", "token-a")
        assert not await store.renew("s", "token-a", ttl_s=5)  # released: nothing to renew

    run_with(make_store, scenario)


def test_commit_is_fenced_by_the_lock(make_store: StoreFactory) -> None:
    async def scenario(store: MemoryStore) -> None:
        await store.create_session("s", ttl_s=60, lookahead_s=0)
        assert await store.acquire("s", "token-a", ttl_s=0.2)
        await asyncio.sleep(0.3)  # token-a's lease ran out and token-b took the session
        assert await store.acquire("s", "token-b", ttl_s=5)
        with pytest.raises(CommitFenced):
            await store.commit_clip("s", 0, {0: features(1, 0)}, b"late", token="token-a")
        assert isinstance(CommitFenced("x"), StoreUnavailable)  # callers degrade on it
        record = await store.get_session("s")
        assert record is not None
        assert (record.clips_seen, record.stored_seconds) == (0, 0)
        assert await store.get_clip("s", 0) is None
        held = await store.commit_clip("s", 0, {0: features(1, 0)}, b"ok", token="token-b")
        assert (held.clips_seen, held.stored_seconds) == (1, 1)
        assert await store.get_clip("s", 0) == b"ok"

    run_with(make_store, scenario)


def test_delete_purges_memory_responses_and_lock(make_store: StoreFactory) -> None:
    async def scenario(store: MemoryStore) -> None:
        await store.create_session("s", ttl_s=60, lookahead_s=0)
        await store.commit_clip("s", 0, {0: features(3, 0)}, b"r", tracker=b"T")
        assert await store.acquire("s", "token", ttl_s=30)
        assert await store.delete_session("s")
        assert await store.read_window("s", [0]) == ({}, None)
        assert await store.get_clip("s", 0) is None
        assert await store.acquire("s", "other", ttl_s=30)
        fresh = await store.create_session("s", ttl_s=60, lookahead_s=0)
        assert (fresh.clips_seen, fresh.seen, fresh.stored_seconds) == (0, (), 0)
        assert (await store.read_window("s", []))[1] is None  # no tracks of the old session
        again = await store.commit_clip("s", 0, {0: features(1, 5)}, b"new")
        assert again.clips_seen == 1  # clip 0 is new again: nothing of the old session left
        assert await store.get_clip("s", 0) == b"new"

    run_with(make_store, scenario)


def test_concurrent_commits_of_one_clip_write_once(make_store: StoreFactory) -> None:
    async def scenario(store: MemoryStore) -> list[SessionRecord]:
        await store.create_session("s", ttl_s=60, lookahead_s=0)
        return await asyncio.gather(*(
            store.commit_clip("s", 0, {0: features(1, n)}, b"%d" % n) for n in range(8)))

    records = run_with(make_store, scenario)
    assert {record.clips_seen for record in records} == {1}


def test_tracker_state_travels_with_read_and_commit(make_store: StoreFactory) -> None:
    async def scenario(store: MemoryStore) -> None:
        await store.create_session("s", ttl_s=60, lookahead_s=0)
        assert await store.read_window("s", [0, 1]) == ({}, None)
        await store.commit_clip("s", 0, {0: features(2, 0)}, b"r0", tracker=b"state-0")
        memory, tracker = await store.read_window("s", [0, 1])
        assert sorted(memory) == [0]
        assert tracker == b"state-0"
        np.testing.assert_array_equal(memory[0], as_stored(features(2, 0)))
        assert await store.read_window("s", []) == ({}, b"state-0")
        await store.commit_clip("s", 1, {1: features(1, 1)}, b"r1")  # None keeps the state
        assert (await store.read_window("s", [1]))[1] == b"state-0"
        await store.commit_clip("s", 2, {}, b"r2", tracker=b"state-2")
        # an idempotent replay applies nothing: not its tracker state either
        await store.commit_clip("s", 2, {}, b"again", tracker=b"replayed")
        await store.commit_clip("s", 1, {}, b"again", tracker=b"replayed")
        assert (await store.read_window("s", []))[1] == b"state-2"
        assert await store.read_window("ghost", [0]) == ({}, None)
        with pytest.raises(SessionNotFound):
            await store.commit_clip("ghost", 0, {}, b"x", tracker=b"state")
        assert await store.read_window("ghost", []) == ({}, None)

    run_with(make_store, scenario)


def test_concurrent_commits_keep_the_winners_tracker_state(make_store: StoreFactory) -> None:
    async def scenario(store: MemoryStore) -> tuple[bytes | None, bytes | None]:
        await store.create_session("s", ttl_s=60, lookahead_s=0)
        await asyncio.gather(*(store.commit_clip("s", 0, {}, b"%d" % n, tracker=b"t%d" % n)
                               for n in range(8)))
        return await store.get_clip("s", 0), (await store.read_window("s", []))[1]

    response, tracker = run_with(make_store, scenario)
    assert response is not None
    assert tracker == b"t" + response  # the state of the commit that applied, no other
