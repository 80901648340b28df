"""The real person detector: every weight of the packaged frozen graph placed, a graph that
does not fit refused by name, and the rebuild (eager and the shipped ONNX) equal to what
TensorFlow computed on real frames (tests/data/real_footage/ssdlite_tensorflow.json, made by
bench/ssdlite_parity.py; TensorFlow itself is not needed here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import torch

from exporters import pedestrian_ssdlite
from exporters.artifact import file_record, load_artifact
from exporters.detector_runtime import DetectorRunner
from exporters.graphs import ExportError
from model.detector.ssdlite import SSDLiteConfig, SSDLiteFrameDetector
from service.settings import DEFAULT_MODEL
from tests.real_footage import video_path

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "real_footage" / "ssdlite_tensorflow.json"
BOX_PX, SCORE = 0.5, 1e-3  # the bound for "equal to the original"


@pytest.fixture(scope="module")
def tensorflow() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def frames(tensorflow: dict[str, Any]) -> dict[tuple[str, int], np.ndarray]:
    wanted = {(f["video"], f["frame"]) for f in tensorflow["frames"]}
    out = {}
    for video in sorted({v for v, _ in wanted}):
        with av.open(str(video_path(video))) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if (video, i) in wanted:
                    out[video, i] = frame.to_ndarray(format="rgb24")
    return out


@pytest.fixture(scope="module")
def network() -> pedestrian_ssdlite.SSDLiteMobileNetV2:
    model, _ = pedestrian_ssdlite.load_weights(pedestrian_ssdlite.packaged_graph())
    return model


def tf_pixels(entry: dict[str, Any], frame: np.ndarray) -> np.ndarray:
    height, width = frame.shape[:2]
    boxes = np.array(entry["boxes_yxyx"], np.float32).reshape(-1, 4)[:, [1, 0, 3, 2]]
    return boxes * np.array([width, height, width, height], np.float32)  # [K,4] x1,y1,x2,y2


def assert_same(boxes: np.ndarray, scores: np.ndarray, entry: dict[str, Any],
                frame: np.ndarray, threshold: float) -> None:
    keep = np.array(entry["scores"]) >= threshold
    theirs, their_scores = tf_pixels(entry, frame)[keep], np.array(entry["scores"])[keep]
    assert len(boxes) == len(theirs), f"{entry['video']}#{entry['frame']}"
    order = np.argsort(-scores, kind="stable")
    np.testing.assert_allclose(boxes[order], theirs, atol=BOX_PX)
    np.testing.assert_allclose(scores[order], their_scores, atol=SCORE)


def test_the_fixture_is_of_the_packaged_graph(tensorflow: dict[str, Any]) -> None:
    graph = pedestrian_ssdlite.packaged_graph()
    assert tensorflow["graph_sha256"] == file_record(graph)["sha256"]
    assert len(tensorflow["frames"]) >= 10


def test_every_weight_is_placed(network: pedestrian_ssdlite.SSDLiteMobileNetV2) -> None:
    assert sum(p.numel() for p in network.parameters()) == 3_045_126
    names = pedestrian_ssdlite.tf_names(network)
    assert len(set(names.values())) == len(names)  # no TensorFlow tensor used twice
    assert names["stem.conv.weight"] == "FeatureExtractor/MobilenetV2/Conv/weights"
    assert names["predictors.5.cls.bias"] == "BoxPredictor_5/ClassPredictor/biases"


@pytest.mark.parametrize("change", ["drop", "reshape", "extra"])
def test_a_graph_that_does_not_fit_is_refused(monkeypatch: pytest.MonkeyPatch,
                                              change: str) -> None:
    real = pedestrian_ssdlite.constants
    victim = "FeatureExtractor/MobilenetV2/expanded_conv_7/project/weights"

    def altered(nodes: Any) -> dict[str, np.ndarray]:
        values = dict(real(nodes))
        if change == "drop":
            del values[victim]
        elif change == "reshape":
            values[victim] = values[victim][..., :10]
        else:
            values["BoxPredictor_6/ClassPredictor/weights"] = np.zeros((1, 1, 8, 2), np.float32)
        return values

    monkeypatch.setattr(pedestrian_ssdlite, "constants", altered)
    wanted = {"drop": "expanded_conv_7/project/weights", "reshape": "1 misshapen",
              "extra": "BoxPredictor_6"}[change]
    with pytest.raises(ExportError, match=wanted):
        pedestrian_ssdlite.load_weights(pedestrian_ssdlite.packaged_graph())


def test_the_rebuild_computes_what_tensorflow_computed(
        network: pedestrian_ssdlite.SSDLiteMobileNetV2, tensorflow: dict[str, Any],
        frames: dict[tuple[str, int], np.ndarray]) -> None:
    threshold = tensorflow["min_score"]
    detector = SSDLiteFrameDetector(network, SSDLiteConfig(score_threshold=threshold)).eval()
    for entry in tensorflow["frames"]:
        frame = frames[entry["video"], entry["frame"]]
        with torch.no_grad():
            boxes, scores, classes = (t.numpy() for t in detector(torch.from_numpy(frame)))
        assert set(classes.tolist()) <= {1}
        assert_same(boxes, scores, entry, frame, threshold)


def test_the_shipped_onnx_is_the_packaged_graph(tensorflow: dict[str, Any],
                                                frames: dict[tuple[str, int], np.ndarray]
                                                ) -> None:
    artifact = load_artifact(DEFAULT_MODEL)
    spec = artifact.choose_detector("ssdlite-person")
    assert spec is not None
    section = artifact.manifest["detectors"]["ssdlite-person"]
    assert section["source"]["sha256"] == tensorflow["graph_sha256"]
    assert section["source"]["mapping_version"] == pedestrian_ssdlite.MAPPING_VERSION
    assert section["parity"]["passed"]
    assert section["parity"]["probe"]["detections"] > 0
    runner = DetectorRunner(spec)
    for entry in tensorflow["frames"]:
        frame = frames[entry["video"], entry["frame"]]
        found = runner(frame)
        height, width = frame.shape[:2]
        boxes = found.person_boxes * np.array([width, height, width, height], np.float32)
        assert_same(boxes, found.person_scores, entry, frame, spec.score_threshold)
