"""What the dataset hands to `collate`: one key frame's clip and boxes, or why it was skipped."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClipMeta:
    video_id: str
    timestamp: int  # key frame second
    original_size: tuple[int, int]  # (height, width) of the source video
    size: tuple[int, int]  # (height, width) after resizing, before batch padding
    scale: float  # resized / original side length
    flipped: bool
    cached: bool  # the window came from the disk cache rather than the decoder


@dataclass(frozen=True)
class Skipped:
    """A video or key frame left out, and why (the message names the file)."""

    video_id: str
    timestamp: int | None  # None: the whole video
    reason: str


@dataclass(frozen=True)
class Sample:
    clip: np.ndarray  # uint8 [T,h,w,3]
    person_boxes: np.ndarray  # float32 [n,4] x1, y1, x2, y2 in pixels of `clip`
    targets: np.ndarray  # float32 [n,A] multi-hot, column a = action a+1
    person_ids: np.ndarray  # int64 [n], -1 where unknown (detector boxes)
    person_scores: np.ndarray  # float32 [n], 1.0 for ground truth
    person_boxes_norm: np.ndarray  # float32 [n,4] as in the file: normalised, not augmented
    object_boxes: np.ndarray  # float32 [k,4] pixels, highest score first
    object_scores: np.ndarray  # float32 [k]
    object_categories: np.ndarray  # int64 [k]
    meta: ClipMeta
