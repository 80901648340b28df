"""The shipped model behind the engine on the README's sample clip: its detector finds the
persons the synthetic annotations place there, and the tracker keeps their ids."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import torch
from prometheus_client import CollectorRegistry
from torchvision.ops import box_iou

from exporters.artifact import load_artifact
from service.batcher import Batcher
from service.metrics import Metrics
from service.params import CostBounds, detect_params
from service.runtime import load_runtime
from service.settings import DEFAULT_MODEL, Device, RuntimeKind, Settings
from service.stages import ServedModel
from service.state import artifact_formats, build_engine, load_detector, model_ref
from service.store import LocalStore

SAMPLE = Path(__file__).resolve().parents[2] / "docs" / "sample"


async def detect_sample() -> dict[str, object]:
    # the synthetic benchmark's own detector (the shipped default is the real person detector)
    settings = Settings(runtime=RuntimeKind.onnx, device=Device.cpu, detector="synthetic")
    artifact = load_artifact(DEFAULT_MODEL, artifact_formats(settings))
    runtime = load_runtime(artifact, settings.runtime, settings.device)
    batcher = Batcher(runtime, settings.max_batch, max_wait_ms=2, queue_size=16)
    served = ServedModel(artifact, model_ref(artifact, "onnx", "cpu", settings.detector),
                         batcher, load_detector(artifact, "cpu", settings.detector))
    engine = build_engine(settings, served, LocalStore("v", 60, 600, 10),
                          Metrics(CollectorRegistry()))
    params = detect_params({"top_k": "1"}, artifact.labels,
                           CostBounds.from_settings(settings))
    try:
        answer = await engine.detect(SAMPLE / "clip.mp4", params, "sample")
    finally:
        await batcher.close()
    return json.loads(answer.body)


def test_shipped_detector_on_the_sample() -> None:
    body = asyncio.run(detect_sample())
    truth = json.loads((SAMPLE / "boxes.json").read_text())
    assert len(body["keyframes"]) == len(truth)
    found = total = 0
    ids_of_truth: dict[int, set[int]] = {}
    for keyframe, given in zip(body["keyframes"], truth, strict=True):
        assert keyframe["timestamp"] == given["timestamp"]
        gt = np.array(given["boxes"]).reshape(-1, 4)
        got = np.array([p["box"] for p in keyframe["persons"]]).reshape(-1, 4)
        total += len(gt)
        if len(got) and len(gt):
            overlap = box_iou(torch.from_numpy(gt), torch.from_numpy(got)).numpy()  # [truth, det]
            for t in range(len(gt)):
                if overlap[t].max() >= 0.5:
                    found += 1
                    person = keyframe["persons"][int(overlap[t].argmax())]
                    ids_of_truth.setdefault(t, set()).add(person["person_id"])
        for person in keyframe["persons"]:
            assert person["actions"], "top_k=1 and min_score 0.1: one action per person"
    assert found >= 0.8 * total, f"{found}/{total} annotated persons detected"
    # persons 0-2 are stationed in every key frame of the sample: one id each
    assert all(len(ids_of_truth.get(t, set())) == 1 for t in range(3)), ids_of_truth
