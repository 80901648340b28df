"""A request without boxes on an artifact that carries detector.onnx: the detector stage finds
persons on every key frame, the tracker numbers the persons, graph 1 and the O
blocks get the objects. A random-weight detector with no score threshold (it always finds
something), added to a copy of the random artifact the way `aia export` adds one."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
import torch
from prometheus_client import CollectorRegistry

from exporters.artifact import MANIFEST, file_record, load_artifact
from exporters.detector import export_detector
from model.detector.checkpoint import save_detector
from model.detector.config import DetectorConfig
from model.detector.network import build_detector
from service.batcher import Batcher
from service.decode import Limits
from service.engine import Engine
from service.metrics import Metrics
from service.params import CostBounds, detect_params
from service.runtime import load_runtime
from service.settings import Device, RuntimeKind, Settings
from service.stages import EngineOptions, ServedModel
from service.state import load_detector, model_ref
from service.store import LocalStore
from tests.service.clips import SECONDS, write_clip

TINY = DetectorConfig(widths=(8, 8, 16, 16), fpn_channels=16, head_channels=32,
                      score_threshold=0.0, max_detections=20)
TINY_PERSON = 1  # class id of persons


@pytest.fixture(scope="module")
def detector_artifact(random_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("with-detector")
    torch.manual_seed(3)
    network = build_detector(TINY)
    with torch.no_grad():  # random weights favour boxes; make persons the likelier class
        network.roi_heads.box_predictor.cls_score.bias[TINY_PERSON] += 1.0
    checkpoint = save_detector(folder / "detector.pt", TINY, network, step=1, command="test")
    out = folder / "artifact"
    shutil.copytree(random_artifact, out)
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["detector"] = export_detector(checkpoint, out)
    manifest["files"]["detector.onnx"] = file_record(out / "detector.onnx")
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return out


async def detect_without_boxes(artifact_dir: Path, video: Path) -> dict[str, object]:
    artifact = load_artifact(artifact_dir, ("onnx",))
    runtime = load_runtime(artifact, RuntimeKind.onnx, Device.cpu)
    batcher = Batcher(runtime, max_batch=8, max_wait_ms=2, queue_size=16)
    metrics = Metrics(CollectorRegistry())
    served = ServedModel(artifact, model_ref(artifact, "onnx", "cpu"), batcher,
                         load_detector(artifact, "cpu"))
    engine = Engine(served, LocalStore("v", 60, 600, 10), metrics,
                    EngineOptions(Limits.from_settings(Settings()), max_batch=8, lock_ttl_s=30,
                                  keyframe_rate=1.0, max_persons=4))
    params = detect_params({"min_score": "0", "top_k": "3"}, artifact.labels,
                           CostBounds(max_persons=4))
    try:
        answer = await engine.detect(video, params, "video")
    finally:
        await batcher.close()
    assert metrics.stage_duration.labels("detect")._sum.get() > 0
    return json.loads(answer.body)


def test_detector_finds_the_persons(detector_artifact: Path, tmp_path: Path) -> None:
    body = asyncio.run(detect_without_boxes(detector_artifact, write_clip(tmp_path)))
    keyframes = body["keyframes"]
    assert [k["timestamp"] for k in keyframes] == [float(t) for t in range(SECONDS)]
    persons = [p for k in keyframes for p in k["persons"]]
    assert persons, "a detector without a score threshold finds someone"
    assert all(len(k["persons"]) <= 4 for k in keyframes)  # max_persons
    for person in persons:
        assert 0.0 <= person["score"] <= 1.0
        assert isinstance(person["person_id"], int)
        x1, y1, x2, y2 = person["box"]
        assert 0.0 <= x1 <= x2 <= 1.0
        assert 0.0 <= y1 <= y2 <= 1.0
        assert len(person["actions"]) == 3
    for keyframe in keyframes:  # one track id per person of a key frame
        ids = [p["person_id"] for p in keyframe["persons"]]
        assert len(ids) == len(set(ids))
