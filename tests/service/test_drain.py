"""The end of the drain: a real `aia serve` stopped (SIGTERM) while a request is still
running (its body half sent, over a raw socket so the answer can be read before the body is
whole). The request gets a 503 problem (+ Retry-After) just before the drain ends, not the
listener's plain-text 500 after it, and the process exits 0."""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path
from urllib.parse import quote

from tests.service.clips import boxes_json, write_clip
from tests.service.server import Server

DRAIN_S = 2.0


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}, body


def test_request_past_the_drain_gets_a_503_problem_and_exit_0(
        random_artifact: Path, tmp_path: Path) -> None:
    server = Server(random_artifact, {"AIA_DRAIN_S": str(DRAIN_S)},
                    tmp_path / "serve.log").wait_ready()
    video = write_clip(tmp_path).read_bytes()
    request = (f"POST /v1/detect?boxes={quote(boxes_json())} HTTP/1.1\r\n"
               f"Host: 127.0.0.1\r\nContent-Type: video/mp4\r\n"
               f"Content-Length: {len(video)}\r\n\r\n").encode()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(request + video[: len(video) // 2])  # the rest never comes
            time.sleep(0.5)
            signalled = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            status, headers, body = read_answer(sock)
            answered_after = time.monotonic() - signalled
        assert server.process.wait(timeout=30) == 0, server.log_text()[-2000:]
    finally:
        server.stop()
    assert status == 503, body[:300]
    assert headers["content-type"].startswith("application/problem+json")
    assert json.loads(body)["type"].endswith("/shutting-down")
    assert int(headers["retry-after"]) >= 1
    assert 1.0 < answered_after < DRAIN_S  # at the end of the drain, inside it
    assert "timeout graceful shutdown exceeded" not in server.log_text()
