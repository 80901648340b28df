from __future__ import annotations

import asyncio

from service.store import LocalStore


def test_least_recently_used_session_is_evicted_past_the_bound() -> None:
    async def scenario() -> None:
        store = LocalStore("v", ttl_s=60, max_seconds=10, max_sessions=2)
        await store.create_session("a", ttl_s=60, lookahead_s=0)
        await store.create_session("b", ttl_s=60, lookahead_s=0)
        assert await store.get_session("a") is not None  # a is now the most recent
        await store.create_session("c", ttl_s=60, lookahead_s=0)
        assert await store.count_sessions() == 2
        assert await store.get_session("b") is None
        assert await store.get_session("a") is not None
        assert await store.get_session("c") is not None

    asyncio.run(scenario())


def test_expired_sessions_make_room_before_live_ones_are_evicted() -> None:
    async def scenario() -> None:
        store = LocalStore("v", ttl_s=60, max_seconds=10, max_sessions=2)
        await store.create_session("short", ttl_s=1, lookahead_s=0)
        await store.create_session("long", ttl_s=60, lookahead_s=0)
        await asyncio.sleep(1.05)
        await store.create_session("new", ttl_s=60, lookahead_s=0)
        assert await store.get_session("long") is not None
        assert await store.count_sessions() == 2

    asyncio.run(scenario())


def test_zero_ttl_uses_the_store_default() -> None:
    async def scenario() -> int:
        store = LocalStore("v", ttl_s=42, max_seconds=10, max_sessions=2)
        return (await store.create_session("s", ttl_s=0, lookahead_s=0)).ttl_s

    assert asyncio.run(scenario()) == 42
