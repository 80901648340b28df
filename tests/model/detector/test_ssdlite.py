"""SSDLite-MobileNetV2 as TensorFlow builds it: "SAME" padding, the legacy bilinear resize,
the multiple-grid anchors, and the contract graph's outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.detector.ssdlite import (
    SSDLiteConfig,
    SSDLiteFrameDetector,
    SSDLiteMobileNetV2,
    anchor_shapes,
    feature_sizes,
    grid_anchors,
    resize_bilinear_legacy,
    same_padding,
)


@pytest.mark.parametrize(("size", "kernel", "stride", "pads"), [
    (300, 3, 2, (0, 1)),  # even: TensorFlow pads only after
    (19, 3, 2, (1, 1)),
    (2, 3, 2, (0, 1)),
    (10, 3, 1, (1, 1)),
    (10, 1, 1, (0, 0)),
])
def test_same_padding(size: int, kernel: int, stride: int, pads: tuple[int, int]) -> None:
    assert same_padding(size, kernel, stride) == pads


def test_anchors_follow_the_feature_maps() -> None:
    cfg = SSDLiteConfig()
    sizes = feature_sizes(cfg.input_size)
    assert sizes == [19, 10, 5, 3, 2, 1]
    per_location = [len(s) for s in anchor_shapes(cfg)]
    assert per_location == [3, 6, 6, 6, 6, 6]
    anchors = grid_anchors(cfg, sizes)  # [N,4] y1,x1,y2,x2
    assert anchors.shape == (sum(s * s * a for s, a in zip(sizes, per_location, strict=True)), 4)
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    np.testing.assert_allclose(centres[0], [0.5 / 19, 0.5 / 19], atol=1e-6)
    np.testing.assert_allclose(centres[-1], [0.5, 0.5], atol=1e-6)  # the 1x1 map
    heights = anchors[:3, 2] - anchors[:3, 0]
    np.testing.assert_allclose(heights, [0.1, 0.2 / np.sqrt(2), 0.2 * np.sqrt(2)], rtol=1e-5)


def test_legacy_resize_samples_without_half_pixel_centres() -> None:
    image = torch.arange(4 * 6, dtype=torch.float32).reshape(1, 1, 4, 6).repeat(1, 3, 1, 1)
    out = resize_bilinear_legacy(image, 3)  # source = destination * (in / out)
    rows, cols = np.arange(3) * 4 / 3, np.arange(3) * 6 / 3
    expected = np.array([[r * 6 + c for c in cols] for r in rows], np.float32)
    np.testing.assert_allclose(out[0, 0].numpy(), expected, atol=1e-5)
    up = resize_bilinear_legacy(image, 8)  # upsampling clamps at the last row and column
    assert float(up[0, 0, -1, -1]) == pytest.approx(23.0)


def test_the_contract_graph_on_random_weights() -> None:
    torch.manual_seed(0)
    cfg = SSDLiteConfig(score_threshold=0.0, max_detections=7)
    detector = SSDLiteFrameDetector(SSDLiteMobileNetV2(cfg), cfg).eval()
    frame = torch.randint(0, 255, (90, 160, 3), dtype=torch.uint8)
    with torch.no_grad():
        boxes, scores, classes = detector(frame)
    assert boxes.shape == (7, 4)
    assert classes.dtype == torch.int64
    assert set(classes.tolist()) == {1}
    assert torch.all(scores[:-1] >= scores[1:])
    assert boxes[:, 0].min() >= 0
    assert boxes[:, 2].max() <= 160
    assert boxes[:, 1].min() >= 0
    assert boxes[:, 3].max() <= 90
    assert torch.all(boxes[:, 2] > boxes[:, 0])
