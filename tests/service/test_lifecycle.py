"""Graceful shutdown of a real `aia serve`: a request in flight when SIGTERM arrives still
gets its full answer, then the process exits."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import httpx

from tests.service.media import write_test_video
from tests.service.server import Server

SECONDS = 12


def test_in_flight_request_finishes(random_artifact: Path, tmp_path: Path) -> None:
    video = write_test_video(tmp_path / "long.mp4", seconds=SECONDS, size=(64, 48)).read_bytes()
    boxes = json.dumps([{"timestamp": float(t), "boxes": [[0.1, 0.1, 0.5, 0.9]] * 3}
                        for t in range(SECONDS)])
    server = Server(random_artifact, {"AIA_MAX_BATCH": "1"}, tmp_path / "serve.log")
    server.wait_ready()
    result: dict[str, httpx.Response] = {}

    def post() -> None:
        result["response"] = httpx.post(f"{server.url}/v1/detect", params={"boxes": boxes},
                                        content=video, headers={"content-type": "video/mp4"},
                                        timeout=60)

    worker = threading.Thread(target=post)
    worker.start()
    time.sleep(0.3)  # the request is being decoded or in the model by now
    server.process.send_signal(signal.SIGTERM)
    worker.join(timeout=60)
    response = result["response"]
    assert response.status_code == 200, response.text
    assert len(response.json()["keyframes"]) == SECONDS
    assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)
    log = server.log_text()
    # the signal arrived while the request was in flight: shutdown began before it answered
    assert log.index('"message": "Shutting down"') < log.index('"route": "/v1/detect"')
    assert '"message": "stopped"' in log
