"""Box rules shared by every place that turns a person box into RoI input (no torch here:
the service imports it with the ONNX runtime)."""

from __future__ import annotations

import numpy as np


def enlarge_boxes(boxes: np.ndarray, enlarge: tuple[float, float], width: int,
                  height: int) -> np.ndarray:
    """Test-time box growth of the reference: +w*ex and +h*ey, split over both sides, clipped.

    boxes [K,4] (x1, y1, x2, y2) in pixels of a `width` x `height` frame -> float32 [K,4].
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    ex, ey = enlarge
    dw = (boxes[:, 2] - boxes[:, 0]) * np.float32(ex / 2)
    dh = (boxes[:, 3] - boxes[:, 1]) * np.float32(ey / 2)
    grown = np.stack([boxes[:, 0] - dw, boxes[:, 1] - dh, boxes[:, 2] + dw, boxes[:, 3] + dh],
                     axis=1)  # [K,4]
    limits = np.array([width, height, width, height], np.float32)
    return np.minimum(np.maximum(grown, 0), limits).astype(np.float32)


def person_test_rois(boxes: np.ndarray, enlarge: tuple[float, float], width: int,
                     height: int) -> np.ndarray:
    """The one rule for a person box given to graph 1 at test time, shared by validation,
    held-out scoring and the service: normalised [n,4] (x1, y1, x2, y2) -> pixels of the
    `width` x `height` clip, enlarged by `enlarge` and clipped; float32 [n,4]."""
    scale = np.array([width, height, width, height], np.float32)
    pixels = np.asarray(boxes, np.float32).reshape(-1, 4) * scale  # [n,4]
    return enlarge_boxes(pixels, enlarge, width, height)
