"""Sessions over HTTP against a real `aia serve`, once with the in-process store and once with
the real Redis: memory cold -> warm, person ids across clips, idempotent retries, gaps,
out-of-order, delete."""

from __future__ import annotations

import csv
import io
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.clips import BOXES, boxes_json, write_clip
from tests.service.server import Server

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module", params=["local", "redis"])
def server(request: pytest.FixtureRequest, random_artifact: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"AIA_SESSION_TTL_S": "300"}  # what a failed run leaves in Redis expires soon
    if request.param == "redis":
        env["AIA_REDIS_URL"] = REDIS_URL
    log = tmp_path_factory.mktemp(f"sessions-{request.param}") / "serve.log"
    running = Server(random_artifact, env, log).wait_ready()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_clip(tmp_path_factory.mktemp("clips")).read_bytes()


def post_clip(client: httpx.Client, session: str, clip: bytes, index: int | str,
              **params: str) -> httpx.Response:
    return client.post(f"/v1/sessions/{session}/clips",
                       params={"clip_index": str(index), **params},
                       files={"video": ("clip.mp4", clip, "video/mp4")},
                       data={"boxes": boxes_json()})


def new_session(client: httpx.Client) -> str:
    session = f"test-{uuid.uuid4().hex}"
    response = client.post("/v1/sessions", json={"id": session, "ttl_s": 300})
    assert response.status_code == 201, response.text
    return session


def person_ids(body: dict[str, Any]) -> list[list[int | None]]:
    return [[p["person_id"] for p in k["persons"]] for k in body["keyframes"]]


def problem_slug(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/problem+json")
    return str(response.json()["type"]).rsplit("/", 1)[-1]


def test_create(client: httpx.Client) -> None:
    session = new_session(client)
    again = client.post("/v1/sessions", json={"id": session})
    assert again.status_code == 409
    assert problem_slug(again) == "session-exists"
    made = client.post("/v1/sessions")
    assert made.status_code == 201
    record = made.json()
    assert len(record["id"]) == 32
    assert made.headers["location"] == f"/v1/sessions/{record['id']}"
    assert (record["clips_seen"], record["last_index"], record["memory_seconds"]) == (0, -1, 0)
    assert client.delete(f"/v1/sessions/{record['id']}").status_code == 204


def test_stream(client: httpx.Client, clip: bytes) -> None:
    session = new_session(client)
    first = post_clip(client, session, clip, 0)
    assert first.status_code == 200, first.text
    body = first.json()
    assert first.headers["x-clip-status"] == "new"
    assert body["session"] == {"id": session, "clip_index": 0, "start_s": 0.0,
                               "status": "new", "missing": [], "commit": "stored",
                               "model_changed_from": None}
    assert [k["memory"] for k in body["keyframes"]] == ["cold", "warm", "warm", "warm"]
    assert body["memory"] == "cold"
    assert [len(k["persons"]) for k in body["keyframes"]] == [len(b["boxes"]) for b in BOXES]
    # the same two persons (client boxes) are tracked: the first box is one, the second another
    first_ids = person_ids(body)
    assert first_ids == [[0, 1], [0], [0, 1], []]

    second = post_clip(client, session, clip, 1)
    body = second.json()
    assert body["memory"] == "warm"
    assert person_ids(body) == first_ids  # the tracks continue from the stored state
    assert [k["timestamp"] for k in body["keyframes"]] == [4.0, 5.0, 6.0, 7.0]
    record = client.get(f"/v1/sessions/{session}").json()
    assert (record["clips_seen"], record["last_index"], record["seen"]) == (2, 1, [0, 1])
    assert record["memory_seconds"] > 0

    retry = post_clip(client, session, clip, 1)
    assert retry.status_code == 200
    assert retry.headers["x-clip-status"] == "duplicate"
    assert retry.content == second.content
    assert client.get(f"/v1/sessions/{session}").json() == record

    gap = post_clip(client, session, clip, 3).json()
    assert gap["session"]["status"] == "gap"
    assert gap["session"]["missing"] == [2]
    assert gap["keyframes"][0]["memory"] == "cold"  # seconds 8-11 never came
    assert person_ids(gap) == [[2, 3], [2], [2, 3], []]  # 6 s unseen: new persons
    late = post_clip(client, session, clip, 2)
    assert late.json()["session"]["status"] == "out_of_order"
    assert late.json()["keyframes"][0]["memory"] == "warm"  # seconds 4-7 are there
    assert person_ids(late.json()) == [[None, None], [None], [None, None], []]  # no rewind

    as_csv = post_clip(client, session, clip, 4, format="ava_csv", top_k="1")
    rows = list(csv.reader(io.StringIO(as_csv.text)))
    assert len(rows) == sum(len(b["boxes"]) for b in BOXES)
    assert {row[0] for row in rows} == {session}
    assert {float(row[1]) for row in rows} == {16.0, 17.0, 18.0}
    assert {row[8] for row in rows} == {"2", "3"}  # the late clip left the tracks as they were


def test_delete_purges(client: httpx.Client, clip: bytes) -> None:
    session = new_session(client)
    assert post_clip(client, session, clip, 0).status_code == 200
    assert client.delete(f"/v1/sessions/{session}").status_code == 204
    assert problem_slug(client.get(f"/v1/sessions/{session}")) == "session-not-found"
    assert post_clip(client, session, clip, 1).status_code == 404
    assert client.delete(f"/v1/sessions/{session}").status_code == 404
    # a new session under the same id starts cold: nothing of the old memory is left
    client.post("/v1/sessions", json={"id": session})
    again = post_clip(client, session, clip, 1).json()
    assert again["keyframes"][0]["memory"] == "cold"
    client.delete(f"/v1/sessions/{session}")


@pytest.mark.parametrize(("index", "slug"), [("-1", "invalid-parameter"),
                                             ("99999999999", "invalid-parameter"),
                                             ("one", "invalid-parameter")])
def test_bad_clip_index(client: httpx.Client, clip: bytes, index: str, slug: str) -> None:
    session = new_session(client)
    response = post_clip(client, session, clip, index)
    assert response.status_code == 422
    assert problem_slug(response) == slug
    client.delete(f"/v1/sessions/{session}")


def test_unknown_session(client: httpx.Client, clip: bytes) -> None:
    response = post_clip(client, "no-such-session", clip, 0)
    assert response.status_code == 404
    assert problem_slug(response) == "session-not-found"


def test_clip_index_far_ahead_is_bounded(client: httpx.Client, clip: bytes) -> None:
    """clip_index=10,000,000 on a fresh session: a 422 that names the bound, at once; the
    session stays usable and unchanged."""
    session = new_session(client)
    started = time.monotonic()
    response = post_clip(client, session, clip, 10_000_000)
    assert time.monotonic() - started < 5.0
    assert response.status_code == 422
    assert problem_slug(response) == "cost-limit"
    assert response.json()["bound"] == "max_clip_gap"
    assert len(response.content) < 2000
    record = client.get(f"/v1/sessions/{session}").json()
    assert (record["clips_seen"], record["last_index"]) == (0, -1)
    assert post_clip(client, session, clip, 3).json()["session"]["missing"] == [0, 1, 2]
    client.delete(f"/v1/sessions/{session}")


def test_deeply_nested_boxes_are_a_422(client: httpx.Client, clip: bytes) -> None:
    session = new_session(client)
    response = client.post(f"/v1/sessions/{session}/clips", params={"clip_index": "0"},
                           files={"video": ("clip.mp4", clip, "video/mp4")},
                           data={"boxes": "[" * 5000 + "]" * 5000})
    assert response.status_code == 422
    assert problem_slug(response) == "invalid-boxes"
    assert client.get("/health/live").status_code == 200
    client.delete(f"/v1/sessions/{session}")
