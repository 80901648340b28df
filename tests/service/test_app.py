"""The service over HTTP: a real `aia serve` process (in-process memory store, an API key)."""

from __future__ import annotations

import csv
import io
import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.middleware import hash_key
from tests.service.clips import BOXES, boxes_json, write_clip
from tests.service.media import BAD_MEDIA
from tests.service.server import Server

API_KEY = "test-key-123"
MAX_UPLOAD = 200_000


@pytest.fixture(scope="module")
def server(random_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("app-server") / "serve.log"
    env = {"AIA_API_KEY_HASHES": f"{hash_key('other')},{hash_key(API_KEY)}",
           "AIA_MAX_UPLOAD_BYTES": str(MAX_UPLOAD)}
    running = Server(random_artifact, env, log).wait_ready()
    yield running
    assert running.stop() == 0  # a SIGTERM that drained cleanly is a clean exit


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"X-API-Key": API_KEY}, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_clip(tmp_path_factory.mktemp("clips")).read_bytes()


def detect(client: httpx.Client, clip: bytes, **params: str) -> httpx.Response:
    return client.post("/v1/detect", params=params, files={"video": ("clip.mp4", clip,
                                                                     "video/mp4")},
                       data={"boxes": boxes_json()})


def metric(client: httpx.Client, name: str, **labels: str) -> float:
    text = client.get("/metrics").text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v
                                           for k, v in labels.items()):
                total += sample.value
    return total


def assert_problem(response: httpx.Response, status: int, slug: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["type"].endswith("/" + slug), body
    assert body["detail"]


def test_health_and_request_id(client: httpx.Client) -> None:
    assert client.get("/health/live").json() == {"status": "alive"}
    assert client.get("/health/ready").json() == {"status": "ready"}
    given = client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = client.get("/health/live", headers={"X-Request-ID": "bad id with spaces"})
    assert len(made.headers["x-request-id"]) == 32


def test_whole_video_json(client: httpx.Client, clip: bytes) -> None:
    response = detect(client, clip, min_score="0.0", top_k="4")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["video"] == {"width": 64, "height": 48, "fps": 25.0, "duration_s": 4.0,
                             "frames": 100}
    assert body["model"]["runtime"] == "onnx"
    assert [k["timestamp"] for k in body["keyframes"]] == [b["timestamp"] for b in BOXES]
    for keyframe, given in zip(body["keyframes"], BOXES, strict=True):
        assert [p["box"] for p in keyframe["persons"]] == given["boxes"]
        assert keyframe["memory"] == "warm"  # every other second of the video is in memory
        for person in keyframe["persons"]:
            scores = [a["score"] for a in person["actions"]]
            assert len(scores) == 4
            assert scores == sorted(scores, reverse=True)
            assert all(0.0 <= s <= 1.0 for s in scores)
        ids = [p["person_id"] for p in keyframe["persons"]]
        assert all(isinstance(i, int) and i >= 0 for i in ids)
        assert len(set(ids)) == len(ids)  # one id per person of a key frame
    assert body["memory"] == "warm"


def test_filters(client: httpx.Client, clip: bytes) -> None:
    everything = detect(client, clip, min_score="0", top_k="1000").json()
    person = everything["keyframes"][0]["persons"][0]
    assert len(person["actions"]) == 80
    best = person["actions"][0]
    picked = detect(client, clip, min_score="0", labels=f"{best['name']},3").json()
    assert {a["id"] for a in picked["keyframes"][0]["persons"][0]["actions"]} == {best["id"], 3}
    high = detect(client, clip, min_score=str(best["score"])).json()
    assert [a["id"] for a in high["keyframes"][0]["persons"][0]["actions"]] == [best["id"]]


def test_ava_csv(client: httpx.Client, clip: bytes) -> None:
    response = detect(client, clip, format="ava_csv", top_k="2", min_score="0")
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    persons = sum(len(b["boxes"]) for b in BOXES)
    assert len(rows) == persons * 2
    for row in rows:
        assert len(row) == 9  # AVA columns + person_id (the tracker's)
        assert row[0] == "video"
        assert int(row[8]) >= 0
        assert 1 <= int(row[6]) <= 80
        assert 0.0 <= float(row[7]) <= 1.0
        assert all(0.0 <= float(v) <= 1.0 for v in row[2:6])


def test_no_boxes_and_no_detector(client: httpx.Client, clip: bytes) -> None:
    response = client.post("/v1/detect", content=clip, headers={"content-type": "video/mp4"})
    assert_problem(response, 422, "no-person-source")
    assert "boxes" in response.json()["detail"]


def test_models(client: httpx.Client) -> None:
    (model,) = client.get("/v1/models").json()["models"]
    assert len(model["labels"]) == 80
    assert model["input"]["frames"] == 16
    assert model["parity"]["passed"] is True
    assert model["version"].startswith(model["name"] + "-")


def test_api_key(server: Server, clip: bytes) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        assert_problem(anonymous.get("/v1/models"), 401, "unauthorized")
        wrong = anonymous.get("/v1/models", headers={"X-API-Key": "nope"})
        assert_problem(wrong, 401, "unauthorized")
        assert wrong.headers["www-authenticate"] == "Bearer"
        bearer = anonymous.get("/v1/models", headers={"Authorization": f"Bearer {API_KEY}"})
        assert bearer.status_code == 200
        assert anonymous.get("/health/ready").status_code == 200
        assert anonymous.get("/metrics").status_code == 200


def test_not_found_and_validation(client: httpx.Client) -> None:
    missing = client.get("/v1/nothing")
    assert_problem(missing, 404, "not-found")
    assert missing.json()["request_id"] == missing.headers["x-request-id"]
    assert_problem(client.get("/v1/sessions/bad%20id"), 422, "unprocessable")
    assert_problem(client.get("/v1/sessions/unknown-session"), 404, "session-not-found")


def test_method_not_allowed_names_every_method_of_the_path(client: httpx.Client) -> None:
    # GET and DELETE of /v1/sessions/{id} are two routes; the 405 names both
    for method in ("OPTIONS", "PUT", "PATCH"):
        response = client.request(method, "/v1/sessions/abc")
        assert response.status_code == 405
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.headers["allow"] == "DELETE, GET"
    assert client.request("OPTIONS", "/v1/detect").headers["allow"] == "POST"


@pytest.mark.parametrize("body", [{"lookahead_s": False}, {"lookahead_s": True},
                                  {"ttl_s": 1.5}, {"ttl_s": "60"}])
def test_session_seconds_are_strict_integers(client: httpx.Client, body: dict) -> None:
    response = client.post("/v1/sessions", json=body)
    assert response.status_code == 422, response.text
    assert next(iter(body)) in response.json()["detail"]


def test_metrics_move(client: httpx.Client, clip: bytes) -> None:
    route = {"route": "/v1/detect", "method": "POST", "status": "200"}
    before = metric(client, "aia_http_requests_total", **route)
    clips = metric(client, "aia_clips_total")
    keyframes = metric(client, "aia_keyframes_total")
    head = metric(client, "aia_stage_duration_seconds_count", stage="head")
    assert detect(client, clip).status_code == 200
    assert metric(client, "aia_http_requests_total", **route) == before + 1
    assert metric(client, "aia_clips_total") == clips + 1
    assert metric(client, "aia_keyframes_total") == keyframes + len(BOXES)
    assert metric(client, "aia_stage_duration_seconds_count", stage="head") == head + 1
    assert metric(client, "aia_ready") == 1.0
    assert metric(client, "aia_model_info", runtime="onnx", device="cpu") == 1.0
    names = {f.name for f in text_string_to_metric_families(client.get("/metrics").text)}
    assert {"aia_batch_size", "aia_queue_depth", "aia_memory_events", "aia_rejected",
            "aia_active_sessions", "aia_http_request_duration_seconds"} <= names


def test_openapi(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v1/sessions/{session_id}/clips" in paths
    assert "multipart/form-data" in paths["/v1/detect"]["post"]["requestBody"]["content"]
    assert client.get("/docs").status_code == 200


BAD_REQUESTS = {  # name -> (content type, body, query, expected status, slug)
    "wrong_content_type": ("text/plain", b"hello", {}, 415, "unsupported-media"),
    "oversized": ("video/mp4", b"\0" * (MAX_UPLOAD + 10), {}, 413, "payload-too-large"),
    "malformed_boxes_json": ("video/mp4", None, {"boxes": "[{"}, 422, "invalid-boxes"),
    "boxes_outside_frame": ("video/mp4", None, {"boxes": json.dumps(
        [{"timestamp": 0, "boxes": [[0.5, 0.5, 1.5, 0.9]]}])}, 422, "invalid-boxes"),
    "boxes_past_end": ("video/mp4", None, {"boxes": json.dumps(
        [{"timestamp": 60, "boxes": [[0.1, 0.1, 0.5, 0.9]]}])}, 422, "invalid-boxes"),
    "bad_min_score": ("video/mp4", None, {"min_score": "2"}, 422, "invalid-parameter"),
    "unknown_label": ("video/mp4", None, {"labels": "fly"}, 422, "invalid-parameter"),
}


@pytest.mark.parametrize("name", sorted(BAD_REQUESTS))
def test_bad_requests(client: httpx.Client, clip: bytes, name: str) -> None:
    content_type, body, query, status, slug = BAD_REQUESTS[name]
    response = client.post("/v1/detect", params=query, content=clip if body is None else body,
                           headers={"content-type": content_type})
    assert_problem(response, status, slug)
    assert client.get("/health/ready").status_code == 200


@pytest.mark.parametrize("name", sorted(BAD_MEDIA))
def test_bad_media(client: httpx.Client, tmp_path: Path, name: str) -> None:
    write, status, slug = BAD_MEDIA[name]
    data = write(tmp_path).read_bytes()
    response = client.post("/v1/detect", params={"boxes": boxes_json()}, content=data,
                           headers={"content-type": "video/mp4"})
    assert_problem(response, status, slug)
    assert client.get("/health/ready").status_code == 200


def test_rejections_counted(client: httpx.Client) -> None:
    assert metric(client, "aia_rejected_total", reason="too_large") >= 1
    assert metric(client, "aia_rejected_total", reason="unsupported") >= 1
    assert metric(client, "aia_rejected_total", reason="invalid") >= 1


def test_graceful_shutdown(server: Server, clip: bytes) -> None:
    """Last in this module: it stops the server. A request in flight when SIGTERM arrives
    (its body half sent) gets its full answer, then the process exits."""
    half_sent, go_on = threading.Event(), threading.Event()

    def body() -> Iterator[bytes]:
        yield clip[: len(clip) // 2]
        half_sent.set()
        go_on.wait(10)
        yield clip[len(clip) // 2:]

    result: dict[str, httpx.Response] = {}

    def post() -> None:
        result["r"] = httpx.post(f"{server.url}/v1/detect", params={"boxes": boxes_json()},
                                 content=body(), timeout=60,
                                 headers={"content-type": "video/mp4", "X-API-Key": API_KEY})

    worker = threading.Thread(target=post)
    worker.start()
    assert half_sent.wait(10)
    time.sleep(0.2)  # the server is reading the body
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)  # the server is shutting down
    go_on.set()
    worker.join(timeout=60)
    response = result["r"]
    assert response.status_code == 200, response.status_code
    assert len(response.json()["keyframes"]) == len(BOXES)
    assert server.process.wait(timeout=30) == 0
    log = server.log_text()
    # the signal arrived while the request was in flight: shutdown began before it answered
    assert log.index('"message": "Shutting down"') < log.rindex('"route": "/v1/detect"')
    assert '"message": "stopped"' in log
