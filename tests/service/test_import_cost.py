"""With the ONNX runtime, a running `aia serve` never imports torch: not at start-up, not
while it answers (`python -X importtime` logs every import the process makes)."""

from __future__ import annotations

from pathlib import Path

import httpx

from service.settings import Settings
from tests.service.clips import boxes_json, write_clip
from tests.service.server import Server


def imported(log: str) -> set[str]:
    """Module names from -X importtime lines: 'import time: self | cumulative | name'."""
    return {line.rsplit("|", 1)[1].strip() for line in log.splitlines()
            if line.startswith("import time:") and line.count("|") == 2}


def test_onnx_service_answers_without_torch(random_artifact: Path, tmp_path: Path) -> None:
    assert Settings().runtime.value == "onnx"  # the default this test is about
    log = tmp_path / "serve.log"
    server = Server(random_artifact, {"AIA_RUNTIME": "onnx", "AIA_DEVICE": "cpu"}, log,
                    python_flags=("-X", "importtime")).wait_ready()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            answer = client.post("/v1/detect", files={"video": (
                "clip.mp4", write_clip(tmp_path).read_bytes(), "video/mp4")},
                data={"boxes": boxes_json()})
            assert answer.status_code == 200, answer.text
            session = client.post("/v1/sessions").json()["id"]
            clip = client.post(f"/v1/sessions/{session}/clips", params={"clip_index": 0},
                               files={"video": ("c.mp4", write_clip(tmp_path).read_bytes())},
                               data={"boxes": boxes_json()})
            assert clip.status_code == 200, clip.text
    finally:
        server.stop()
    names = imported(server.log_text())
    assert "onnxruntime" in names  # the log is read: the runtime it served with is there
    assert "service.engine" in names
    assert not {n for n in names if n == "torch" or n.startswith("torch.")}
    assert "model.train" not in names
