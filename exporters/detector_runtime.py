"""Running a detector graph (ours or a user's, DETECTOR_CONTRACT) with ONNX Runtime on one
frame: what the engine calls when a request has no boxes. No torch import."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from exporters.artifact import ArtifactError, DetectorSpec, onnx_session


@dataclass(frozen=True)
class FrameDetections:
    """One frame's detections, boxes normalised to [0,1] (x1,y1,x2,y2), best score first."""

    person_boxes: np.ndarray  # float32 [P,4]
    person_scores: np.ndarray  # float32 [P]
    object_boxes: np.ndarray  # float32 [O,4]
    object_scores: np.ndarray  # float32 [O]
    object_classes: np.ndarray  # int64 [O] the detector's class ids (names: spec.classes)


def user_detector(path: str | Path, classes: Mapping[int, str], person_class_id: int,
                  score_threshold: float = 0.0) -> DetectorSpec:
    """A detector someone brings: an ONNX file that follows DETECTOR_CONTRACT."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: detector ONNX file not found")
    if person_class_id not in classes:
        raise ArtifactError(f"{path}: person class id {person_class_id} not in {dict(classes)}")
    return DetectorSpec(path, dict(classes), person_class_id, score_threshold)


class DetectorRunner:
    """Loads the graph once; call it on uint8 RGB frames [H,W,3] of any size."""

    def __init__(self, spec: DetectorSpec, providers: Iterable[str] = ("CPUExecutionProvider",),
                 min_score: float | None = None) -> None:
        self.spec = spec
        self.min_score = spec.score_threshold if min_score is None else min_score
        self.session: Any = onnx_session(spec.path, providers)
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, frame: np.ndarray) -> FrameDetections:
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame: expected uint8 [H,W,3] RGB, got {frame.dtype} "
                             f"{list(frame.shape)}")
        feed = {self.input_name: np.ascontiguousarray(frame)}  # ORT reads raw strides
        boxes, scores, classes = self.session.run(None, feed)
        height, width = frame.shape[:2]
        scale = np.array([width, height, width, height], np.float32)
        keep = scores >= self.min_score
        boxes = np.clip(boxes[keep] / scale, 0.0, 1.0).astype(np.float32)  # [K,4] normalised
        scores, classes = scores[keep].astype(np.float32), classes[keep].astype(np.int64)
        order = np.argsort(-scores, kind="stable")
        boxes, scores, classes = boxes[order], scores[order], classes[order]
        person = classes == self.spec.person_class_id
        return FrameDetections(boxes[person], scores[person], boxes[~person], scores[~person],
                               classes[~person])
