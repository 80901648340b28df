"""Where a request's persons (and objects) come from: the client's boxes, or the artifact's
detector on each key frame; and the RoI boxes graph 1 pools them with.

The detector sees the decoded key frame at the model's resolution (the resize rule of the
input spec, padding cropped off); its boxes come back normalised, so they are reported as
they are and scaled to the resized frame for pooling, like client boxes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from exporters.artifact import InputSpec
from exporters.detector_runtime import FrameDetections
from model.boxes import person_test_rois
from service.params import BoxesAt
from service.tracking import Tracker, TrackerState

Detector = Callable[[np.ndarray], FrameDetections]


@dataclass
class Frames:
    """Key frames of one request: times in the clip and what is at each."""

    times: np.ndarray  # float64 [K]
    boxes: list[np.ndarray]  # K x float32 [n,4] persons, normalised
    scores: list[np.ndarray | None]  # K x float32 [n] detector scores; None: client boxes
    objects: list[np.ndarray]  # K x float32 [o,4] objects, normalised, best first
    detect: bool = False  # the boxes are still to come from the detector
    person_ids: list[list[int] | None] | None = None  # K x [n] track ids, when tracked

    def extend(self, later: Frames) -> None:
        """Append later key frames (the detector's, a batch at a time)."""
        self.times = np.concatenate([self.times, later.times])
        self.boxes += later.boxes
        self.scores += later.scores
        self.objects += later.objects


def given_frames(boxes: Sequence[BoxesAt]) -> Frames:
    k = len(boxes)
    return Frames(np.array([b.timestamp for b in boxes], np.float64), [b.boxes for b in boxes],
                  [None] * k, [np.zeros((0, 4), np.float32)] * k)


def pending_frames(times: np.ndarray) -> Frames:
    k = len(times)
    empty = np.zeros((0, 4), np.float32)
    return Frames(times, [empty] * k, [None] * k, [empty] * k, detect=True)


def detect_pictures(detector: Detector, pictures: Sequence[np.ndarray], times: np.ndarray,
                    max_persons: int, max_objects: int) -> Frames:
    """The detector on each key frame's picture (runs in a thread)."""
    boxes, scores, objects = [], [], []
    for picture in pictures:
        found = detector(np.ascontiguousarray(picture))
        boxes.append(found.person_boxes[:max_persons].astype(np.float32))
        scores.append(found.person_scores[:max_persons].astype(np.float32))
        objects.append(found.object_boxes[:max_objects].astype(np.float32))
    return Frames(np.asarray(times, np.float64), boxes, scores, objects)


def roi_boxes(frames: Frames, rows: Sequence[int], size: tuple[int, int],
              spec: InputSpec) -> tuple[np.ndarray, int]:
    """Key frames `rows` -> graph 1's boxes [P+O,5] (index in rows, pixels of the resized
    frame): every person (enlarged, as at test time), then every object; and P."""
    width, height = size
    scale = np.array([width, height, width, height], np.float32)
    persons, objects = [], []
    for i, row in enumerate(rows):
        grown = person_test_rois(frames.boxes[row], spec.test_box_enlarge, width, height)
        persons.append(np.concatenate([np.full((len(grown), 1), i, np.float32), grown], 1))
        things = frames.objects[row] * scale  # [o,4]
        objects.append(np.concatenate([np.full((len(things), 1), i, np.float32), things], 1))
    person_rows = np.concatenate(persons) if persons else np.zeros((0, 5), np.float32)
    object_rows = np.concatenate(objects) if objects else np.zeros((0, 5), np.float32)
    return np.concatenate([person_rows, object_rows]).astype(np.float32), len(person_rows)


def track(frames: Frames, features: Sequence[np.ndarray]) -> list[list[int] | None]:
    """Person ids across the key frames of one video (in time order), from boxes and the
    persons' RoI features."""
    tracker, state = Tracker(), TrackerState()
    ids: list[list[int] | None] = [None] * len(frames.times)
    for k in np.argsort(frames.times, kind="stable"):
        state, ids[k] = tracker.update(state, float(frames.times[k]), frames.boxes[k],
                                       features[k] if len(features[k]) else None)
    return ids
