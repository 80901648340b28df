"""Per-clip transforms: box geometry, training augmentation, and choosing which boxes to keep.

All randomness comes from an explicit `numpy.random.Generator`, so a sample is a function of
(seed, epoch, index) whichever worker loads it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# ITU-R BT.601 luma weights: the grey that saturation and contrast move towards
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)


@dataclass(frozen=True)
class Augment:
    """Training augmentation. Zero everywhere is no augmentation."""

    box_jitter: float = 0.05  # each side of a ground-truth box moves by up to this x its size
    flip_prob: float = 0.5  # horizontal flip of the clip, persons and objects together
    brightness: float = 0.2  # factors drawn from [1 - x, 1 + x], one per clip
    contrast: float = 0.2
    saturation: float = 0.2

    def __post_init__(self) -> None:
        for name in ("box_jitter", "brightness", "contrast", "saturation"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"augment.{name}={value!r}: must be in [0, 1)")
        if not 0.0 <= self.flip_prob <= 1.0:
            raise ValueError(f"augment.flip_prob={self.flip_prob!r}: must be in [0, 1]")

    @classmethod
    def off(cls) -> Augment:
        return cls(0.0, 0.0, 0.0, 0.0, 0.0)


def to_pixels(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """[n,4] normalised x1, y1, x2, y2 -> [n,4] float32 pixels of a `width` x `height` frame."""
    return (boxes * np.array([width, height, width, height], dtype=np.float32)).astype(np.float32)


def jitter_boxes(boxes: np.ndarray, width: int, height: int, amount: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Move each side by U(-amount, amount) x the box's width / height; clipped to the frame."""
    if amount == 0 or len(boxes) == 0:
        return boxes
    size = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1)  # [n,4] w, h, w, h
    moved = boxes + rng.uniform(-amount, amount, size=boxes.shape) * size
    moved = np.clip(moved, 0, np.array([width, height, width, height], dtype=np.float32))
    # a box squeezed to nothing by clipping keeps its original coordinates
    valid = (moved[:, 2] > moved[:, 0]) & (moved[:, 3] > moved[:, 1])
    return np.where(valid[:, None], moved, boxes).astype(np.float32)


def flip_boxes(boxes: np.ndarray, width: int) -> np.ndarray:
    """Mirror [n,4] pixel boxes of a frame `width` pixels wide."""
    flipped = boxes.copy()
    flipped[:, 0] = width - boxes[:, 2]
    flipped[:, 2] = width - boxes[:, 0]
    return flipped


def flip_clip(clip: np.ndarray) -> np.ndarray:
    """uint8 [T,H,W,3] mirrored left-right."""
    return np.ascontiguousarray(clip[:, :, ::-1])


def colour_coefficients(brightness: float, contrast: float,
                        saturation: float) -> tuple[float, float, float]:
    """Brightness, then contrast, then saturation, folded into one affine map per pixel.

    Returns (k_pixel, k_grey, k_mean) with out = k_pixel * rgb + k_grey * grey(rgb) +
    k_mean * (mean grey of the clip): brightness scales, contrast blends with the clip's mean
    grey, saturation blends with each pixel's grey. Folding skips the clamping between the
    steps, so a clip costs one pass.
    """
    scale = contrast * brightness
    return saturation * scale, (1 - saturation) * scale, (1 - contrast) * brightness


def colour_jitter(clip: np.ndarray, aug: Augment, rng: np.random.Generator) -> np.ndarray:
    """uint8 [T,H,W,3] -> uint8 [T,H,W,3] with one random brightness/contrast/saturation."""
    factors = [rng.uniform(1 - x, 1 + x) for x in (aug.brightness, aug.contrast, aug.saturation)]
    if all(x == 0 for x in (aug.brightness, aug.contrast, aug.saturation)):
        return clip
    k_pixel, k_grey, k_mean = colour_coefficients(*factors)
    pixels = clip.astype(np.float32)
    grey = np.einsum("...k,k->...", pixels, _LUMA.astype(np.float32))  # [T,H,W]
    offset = grey * np.float32(k_grey)
    offset += np.float32(k_mean * grey.mean(dtype=np.float64))
    pixels *= np.float32(k_pixel)
    pixels += offset[..., None]
    np.clip(pixels, 0, 255, out=pixels)
    return np.rint(pixels, out=pixels).astype(np.uint8)


def top_by_score(scores: np.ndarray, cap: int) -> np.ndarray:
    """Indices of the `cap` highest scores, highest first (file order among equal scores)."""
    return np.argsort(-scores, kind="stable")[:cap]


def random_subset(count: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    """All indices when `count <= cap`, else `cap` of them drawn at random, in ascending order."""
    if count <= cap:
        return np.arange(count)
    return np.sort(rng.choice(count, size=cap, replace=False))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[n,4] x [m,4] boxes -> [n,m] intersection over union."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])  # [n,m,2]
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
