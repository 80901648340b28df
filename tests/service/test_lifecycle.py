"""Backpressure and deadlines of a real `aia serve` with a tiny queue (one clip per batch,
one pending job) and a short deadline."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.service.clips import boxes_json, write_clip
from tests.service.media import write_test_video
from tests.service.server import Server

DEADLINE_S = 0.4


@pytest.fixture(scope="module")
def server(random_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"AIA_MAX_BATCH": "1", "AIA_QUEUE_SIZE": "1", "AIA_MAX_WAIT_MS": "0",
           "AIA_REQUEST_TIMEOUT_S": str(DEADLINE_S),
           # the deadline test needs more key frames than the default cost bound allows
           "AIA_MAX_KEYFRAMES": "1000", "AIA_MAX_PERSON_KEYFRAMES": "10000"}
    running = Server(random_artifact, env, tmp_path_factory.mktemp("life") / "serve.log")
    yield running.wait_ready()
    running.stop()


def long_video(folder: Path, seconds: int) -> tuple[bytes, str]:
    video = write_test_video(folder / f"long-{seconds}.mp4", seconds=seconds, size=(64, 48))
    boxes = json.dumps([{"timestamp": float(t), "boxes": [[0.1, 0.1, 0.5, 0.9]] * 3}
                        for t in range(seconds)])
    return video.read_bytes(), boxes


def post(server: Server, video: bytes, boxes: str) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/detect", params={"boxes": boxes}, content=video,
                      headers={"content-type": "video/mp4"}, timeout=60)


def test_full_queue_answers_429(server: Server, tmp_path: Path) -> None:
    video = write_clip(tmp_path).read_bytes()
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda _: post(server, video, boxes_json()), range(12)))
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {200, 429, 504}, statuses  # 504: queued past the deadline
    assert 429 in statuses
    refused = answers[statuses.index(429)]
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert int(refused.headers["retry-after"]) >= 1
    assert httpx.get(f"{server.url}/health/ready").status_code == 200


def test_deadline_answers_504(server: Server, tmp_path: Path) -> None:
    video, boxes = long_video(tmp_path, 300)  # about 5x the work an idle machine does in 0.4 s
    started = time.monotonic()
    response = post(server, video, boxes)
    assert response.status_code == 504, response.status_code
    assert response.json()["type"].endswith("/deadline-exceeded")
    assert time.monotonic() - started < DEADLINE_S + 2
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'aia_rejected_total{reason="deadline"} 0.0' not in metrics
    assert 'aia_rejected_total{reason="overloaded"}' in metrics
    assert httpx.get(f"{server.url}/health/ready").status_code == 200
