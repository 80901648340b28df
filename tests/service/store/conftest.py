from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
import pytest
import redis

from service.store import LocalStore, MemoryStore, RedisStore

REDIS_URL = "redis://127.0.0.1:6379/0"
T = TypeVar("T")
StoreFactory = Callable[..., MemoryStore]


async def memory_of(store: MemoryStore, session: str,
                    seconds: Sequence[int]) -> dict[int, np.ndarray]:
    """The memory half of `read_window` (what the contract tests look at)."""
    return (await store.read_window(session, seconds))[0]


def run_with(make: StoreFactory, scenario: Callable[[Any], Awaitable[T]], **options: Any) -> T:
    """Build a store inside a fresh event loop, run the scenario on it, always close it."""

    async def main() -> T:
        store = make(**options)
        try:
            return await scenario(store)
        finally:
            await store.close()

    return asyncio.run(main())


def purge_namespace(namespace: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"aia:{namespace}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def namespace() -> Iterator[str]:
    """A model version unique to the test: its keys cannot meet another test's."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    purge_namespace(name)


@pytest.fixture(params=["local", "redis"])
def make_store(request: pytest.FixtureRequest, namespace: str) -> StoreFactory:
    def make(max_seconds: int = 600, max_sessions: int = 100) -> MemoryStore:
        if request.param == "local":
            return LocalStore(namespace, 3600, max_seconds, max_sessions)
        return RedisStore(REDIS_URL, namespace, max_seconds, timeout_s=1.0)

    return make
