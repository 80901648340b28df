"""Two `aia serve` processes on one private Redis (started here, so it can be stopped):
memory is shared across replicas, and a Redis outage degrades answers without any 5xx."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.processes import PrivateRedis
from tests.service.clips import boxes_json, write_clip
from tests.service.server import Server


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def replicas(redis: PrivateRedis, random_artifact: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    folder = tmp_path_factory.mktemp("replicas")
    env = {"AIA_REDIS_URL": redis.url, "AIA_REDIS_TIMEOUT_S": "0.3"}
    pair = (Server(random_artifact, env, folder / "a.log"),
            Server(random_artifact, env, folder / "b.log"))
    for server in pair:
        server.wait_ready()
    yield pair
    for server in pair:
        server.stop()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_clip(tmp_path_factory.mktemp("clips")).read_bytes()


def post_clip(url: str, session: str, clip: bytes, index: int) -> httpx.Response:
    return httpx.post(f"{url}/v1/sessions/{session}/clips", params={"clip_index": str(index)},
                      files={"video": ("clip.mp4", clip, "video/mp4")},
                      data={"boxes": boxes_json()}, timeout=60)


def new_session(url: str) -> str:
    session = f"replica-{uuid.uuid4().hex}"
    assert httpx.post(f"{url}/v1/sessions", json={"id": session}).status_code == 201
    return session


def answer(response: httpx.Response) -> dict[str, object]:
    """The part of a clip's answer that depends on memory and model, not on the session id."""
    assert response.status_code == 200, response.text
    body = response.json()
    return {"memory": body["memory"], "keyframes": body["keyframes"]}


def person_ids(body: dict[str, Any]) -> list[list[int | None]]:
    keyframes: list[dict[str, Any]] = body["keyframes"]
    return [[p["person_id"] for p in k["persons"]] for k in keyframes]


def degraded_events(url: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith('aia_memory_events_total{result="degraded"}'):
            return float(line.split()[-1])
    raise AssertionError("aia_memory_events_total{result=degraded} missing")


def test_alternating_replicas_answer_as_one(replicas: tuple[Server, Server],
                                            clip: bytes) -> None:
    a, b = replicas
    alone, shared = new_session(a.url), new_session(b.url)
    for index in range(3):
        one = answer(post_clip(a.url, alone, clip, index))
        two = answer(post_clip((a, b)[index % 2].url, shared, clip, index))
        assert one == two  # memory, scores and person ids
        # the tracker state travels through Redis: the same persons keep their ids
        assert person_ids(two) == [[0, 1], [0], [0, 1], []]
    assert one["memory"] == "warm"
    record = httpx.get(f"{b.url}/v1/sessions/{shared}").json()
    assert (record["clips_seen"], record["last_index"]) == (3, 2)


def test_redis_outage_degrades_then_recovers(redis: PrivateRedis,
                                             replicas: tuple[Server, Server],
                                             clip: bytes) -> None:
    a, _ = replicas
    session = new_session(a.url)
    assert answer(post_clip(a.url, session, clip, 0))["memory"] == "cold"
    before = degraded_events(a.url)
    redis.stop()
    try:
        during = post_clip(a.url, session, clip, 1)
        body = during.json()
        assert body["memory"] == "degraded"
        assert body["session"]["commit"] == "not_stored"  # Redis refused the connection
        assert {k["memory"] for k in body["keyframes"]} == {"degraded"}
        assert all(k["persons"][0]["actions"] for k in body["keyframes"] if k["persons"])
        assert person_ids(body) == [[0, 1], [0], [0, 1], []]  # within the clip only
        assert degraded_events(a.url) == before + 4
        assert httpx.get(f"{a.url}/health/ready").status_code == 200
        assert httpx.post(f"{a.url}/v1/sessions").status_code == 503
    finally:
        redis.start()
    after = post_clip(a.url, session, clip, 2).json()  # clip 1 was never stored
    assert after["session"] == {"id": session, "clip_index": 2, "start_s": 8.0,
                                "status": "gap", "missing": [1], "commit": "stored",
                                "model_changed_from": None}
    assert after["memory"] == "cold"
    assert person_ids(after) == [[2, 3], [2], [2, 3], []]  # clip 0's state, its tracks aged out
    assert answer(post_clip(a.url, session, clip, 3))["memory"] == "warm"
