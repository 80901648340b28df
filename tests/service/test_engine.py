"""The engine in-process: a whole video's answer equals validation's two passes run key frame
by key frame (graph 1 per key frame, the window's `gather` per key frame, graph 2 per key
frame)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from exporters.artifact import load_artifact
from model.boxes import enlarge_boxes
from model.memory_window import pad
from model.postprocess import action_scores
from service.batcher import Batcher
from service.decode import Limits, clip_windows, decode_video, probe_video
from service.engine import Engine
from service.metrics import Metrics
from service.params import CostBounds, detect_params
from service.runtime import load_runtime
from service.schemas import MemoryStatus
from service.settings import Device, RuntimeKind, Settings
from service.stages import EngineOptions, ServedModel
from service.state import model_ref
from service.store import LocalStore
from service.window import overall_status, second_of, status_of
from tests.service.clips import BOXES, boxes_json, write_clip


def reference_scores(artifact_dir: Path, video: Path) -> list[np.ndarray]:
    """Validation's path, one key frame at a time: [n,A] scores per key frame."""
    artifact = load_artifact(artifact_dir, ("onnx",))
    spec, cfg = artifact.input, artifact.config
    runtime = load_runtime(artifact, RuntimeKind.onnx, Device.cpu)
    limits = Limits.from_settings(Settings())
    decoded = decode_video(video, probe_video(video, limits), spec, limits)
    width, height = decoded.size
    seconds: dict[int, np.ndarray] = {}
    for entry in BOXES:
        t = entry["timestamp"]
        norm = np.asarray(entry["boxes"], np.float32).reshape(-1, 4)
        pixels = enlarge_boxes(norm * np.array([width, height] * 2), spec.test_box_enlarge,
                               width, height)
        boxes = np.concatenate([np.zeros((len(pixels), 1), np.float32), pixels], 1)
        clip = clip_windows(decoded, np.array([t]), spec)
        feats = runtime.features(clip, boxes) if len(boxes) else np.zeros((0, spec.feature_dim),
                                                                         np.float32)
        seconds[int(t)] = feats
    out = []
    for t, persons in seconds.items():
        n = len(persons)
        if n == 0:
            out.append(np.zeros((0, spec.num_classes), np.float32))
            continue
        window = cfg.ia.window.gather(seconds, t, spec.feature_dim)
        memory, mask, offsets = pad([window], spec.feature_dim)
        logits = runtime.head(persons, np.zeros(n, np.int64),
                              np.zeros((1, 0, spec.feature_dim), np.float32),
                              np.zeros((1, 0), bool), memory, mask, offsets)
        out.append(action_scores(logits, cfg.classifier.groups))
    return out


async def engine_answer(artifact_dir: Path, video: Path) -> dict[str, object]:
    artifact = load_artifact(artifact_dir, ("onnx",))
    runtime = load_runtime(artifact, RuntimeKind.onnx, Device.cpu)
    batcher = Batcher(runtime, max_batch=8, max_wait_ms=2, queue_size=16)
    metrics = Metrics(CollectorRegistry())
    model = model_ref(artifact, "onnx", "cpu")
    engine = Engine(ServedModel(artifact, model, batcher), LocalStore("v", 60, 600, 10),
                    metrics, EngineOptions(Limits.from_settings(Settings()), max_batch=8,
                                           lock_ttl_s=30))
    params = detect_params({"boxes": boxes_json(), "min_score": "0", "top_k": "1000"},
                           artifact.labels, CostBounds(max_persons=16))
    try:
        answer = await engine.detect(video, params, "video")
    finally:
        await batcher.close()
    assert metrics.keyframes._value.get() == len(BOXES)
    return json.loads(answer.body)


def test_detect_matches_validation(random_artifact: Path, tmp_path: Path) -> None:
    video = write_clip(tmp_path)
    body = asyncio.run(engine_answer(random_artifact, video))
    expected = reference_scores(random_artifact, video)
    for keyframe, scores in zip(body["keyframes"], expected, strict=True):
        assert len(keyframe["persons"]) == len(scores)
        for person, row in zip(keyframe["persons"], scores, strict=True):
            got = np.zeros(len(row))
            for action in person["actions"]:
                got[action["id"] - 1] = action["score"]
            assert len(person["actions"]) == len(row)
            np.testing.assert_allclose(got, row, atol=2e-4)


def test_window_rules() -> None:
    from model.config import preset

    cfg = preset("tiny")  # 4 s of memory each way
    assert cfg.ia.window.seconds_around(10) == [6, 7, 8, 9, 11, 12, 13, 14]
    assert cfg.ia.window.seconds_around(10, 0) == [6, 7, 8, 9]
    assert cfg.ia.window.seconds_around(10, 2) == [6, 7, 8, 9, 11, 12]
    assert second_of(2.9999999) == 3
    assert second_of(3.5) == 3
    assert status_of([1, 2], [1, 2, 5]) is MemoryStatus.warm
    assert status_of([1, 2], [2]) is MemoryStatus.partial
    assert status_of([1, 2], []) is MemoryStatus.cold
    assert status_of([], [1]) is MemoryStatus.cold
    assert overall_status([MemoryStatus.warm, MemoryStatus.partial], False) is \
        MemoryStatus.partial
    assert overall_status([MemoryStatus.warm], True) is MemoryStatus.degraded


@pytest.mark.parametrize("text", ['[{"timestamp": 1, "boxes": [[0, 0, 1]]}]',
                                  '[{"timestamp": -1, "boxes": []}]',
                                  '[{"timestamp": 1, "boxes": []}, {"timestamp": 1, "boxes": []}]',
                                  '{"timestamp": 1}', "[]"])
def test_bad_boxes(random_artifact: Path, text: str) -> None:
    from service.errors import InvalidBoxes

    labels = load_artifact(random_artifact).labels
    with pytest.raises(InvalidBoxes):
        detect_params({"boxes": text}, labels, CostBounds(max_persons=4))


def test_detector_keyframes_are_bounded_before_decoding(random_artifact: Path) -> None:
    from service.errors import CostLimit
    from service.stages import ModelStages

    artifact = load_artifact(random_artifact, ("onnx",))
    options = EngineOptions(Limits.from_settings(Settings()), keyframe_rate=2.0,
                            bounds=CostBounds(max_keyframes=10))
    stages = ModelStages(ServedModel(artifact, model_ref(artifact, "onnx", "cpu"),
                                     batcher=None), options)  # type: ignore[arg-type]
    assert len(stages.detector_times(5.0)) == 10
    with pytest.raises(CostLimit, match="AIA_MAX_KEYFRAMES"):
        stages.detector_times(5.1)
