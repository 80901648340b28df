"""The Redis flags of docker-compose.yml and deploy/k8s/redis.yaml, on a real redis-server
with a tiny memory cap, under the real RedisStore: a full Redis evicts session memory and
keeps taking clips; under Redis's default (noeviction) the same load fails."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator

import numpy as np
import pytest
import redis

from service.store import RedisStore, StoreUnavailable
from tests.deploy.conftest import ROOT, k8s_object, load_compose
from tests.service.server import free_port
from tests.service.store.conftest import memory_of

CAP = "4mb"  # the shipped caps are 512 MB / 1.5 GB; the policy is what is under test
SESSIONS = 300
SECONDS_PER_CLIP = 10
VECTORS = np.ones((4, 256), np.float32)  # [n persons, D] per second: 2 KiB as float16


def _shipped_policy() -> str:
    compose = load_compose(ROOT / "docker-compose.yml")["services"]["redis"]["command"]
    (container,) = k8s_object("StatefulSet", "aia-redis")["spec"]["template"]["spec"]["containers"]
    policies = {args[args.index("--maxmemory-policy") + 1] for args in (compose, container["args"])}
    assert len(policies) == 1, f"compose and k8s disagree: {policies}"
    return policies.pop()


def _start_redis(policy: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    assert binary, "redis-server missing (.ci/run installs it)"
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--maxmemory", CAP, "--maxmemory-policy", policy],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if redis.Redis.from_url(url).ping():
                return process, url
        except redis.ConnectionError:
            time.sleep(0.05)
    process.kill()
    pytest.fail("redis-server did not start")


@pytest.fixture
def redis_with() -> Iterator:
    started: list[subprocess.Popen[bytes]] = []

    def start(policy: str) -> str:
        process, url = _start_redis(policy)
        started.append(process)
        return url

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=10)


async def _fill(url: str) -> tuple[int, list[str]]:
    """Sessions of one clip each until SESSIONS; returns (clips committed, errors)."""
    store = RedisStore(url, "evict", max_seconds=600, timeout_s=2.0)
    committed, errors = 0, []
    try:
        for index in range(SESSIONS):
            session = f"s{index}"
            try:
                await store.create_session(session, ttl_s=3600, lookahead_s=0)
                writes = dict.fromkeys(range(SECONDS_PER_CLIP), VECTORS)
                await store.commit_clip(session, 0, writes, b"{}")
                committed += 1
            except StoreUnavailable as exc:
                errors.append(str(exc))
        last = await memory_of(store, f"s{SESSIONS - 1}", list(range(SECONDS_PER_CLIP)))
        assert errors or len(last) == SECONDS_PER_CLIP  # the newest session is whole
    finally:
        await store.close()
    return committed, errors


def test_shipped_policy_evicts_session_memory_and_keeps_serving(redis_with) -> None:
    policy = _shipped_policy()
    assert policy.startswith("volatile-")
    url = redis_with(policy)
    committed, errors = asyncio.run(_fill(url))
    assert errors == []
    assert committed == SESSIONS
    client = redis.Redis.from_url(url)
    assert client.info("stats")["evicted_keys"] > 0  # the cap was reached and keys went
    # keys without a TTL are never evicted: the session registry survives
    registry = list(client.scan_iter(match="aia:evict:*#registry*"))
    assert len(registry) == 1
    assert client.ttl(registry[0]) == -1
    assert client.zcard(registry[0]) == SESSIONS
    client.close()


def test_without_an_eviction_policy_the_same_load_fails(redis_with) -> None:
    url = redis_with("noeviction")
    committed, errors = asyncio.run(_fill(url))
    assert committed < SESSIONS
    assert errors
    assert any("maxmemory" in error or "OOM" in error for error in errors), errors[:3]
