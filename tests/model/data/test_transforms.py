"""Box geometry, augmentation and selection helpers."""

from __future__ import annotations

import numpy as np
import pytest

from model.data import transforms as tf

BOXES = np.array([[2.0, 4.0, 10.0, 20.0], [0.0, 0.0, 40.0, 30.0]], dtype=np.float32)


def test_flip_boxes_mirrors_and_is_an_involution():
    flipped = tf.flip_boxes(BOXES, width=40)
    np.testing.assert_allclose(flipped, [[30, 4, 38, 20], [0, 0, 40, 30]])
    np.testing.assert_allclose(tf.flip_boxes(flipped, width=40), BOXES)


def test_flip_clip_mirrors_columns():
    clip = np.arange(2 * 3 * 4 * 3, dtype=np.uint8).reshape(2, 3, 4, 3)
    flipped = tf.flip_clip(clip)
    np.testing.assert_array_equal(flipped[:, :, 0], clip[:, :, 3])
    assert flipped.flags.c_contiguous


@pytest.mark.parametrize("amount", [0.0, 0.1, 0.3])
def test_jitter_moves_sides_within_bounds(amount: float):
    rng = np.random.default_rng(0)
    boxes = np.repeat(np.array([[10.0, 10.0, 30.0, 50.0]], np.float32), 200, axis=0)
    moved = tf.jitter_boxes(boxes, 40, 60, amount, rng)
    limit = amount * np.array([20, 40, 20, 40]) + 1e-4
    assert np.all(np.abs(moved - boxes) <= limit)
    assert np.all((moved[:, 2] > moved[:, 0]) & (moved[:, 3] > moved[:, 1]))
    assert np.all((moved >= 0) & (moved <= [40, 60, 40, 60]))
    assert (np.abs(moved - boxes).max() > 0) == (amount > 0)


def test_jitter_clips_to_the_frame():
    boxes = np.array([[0.0, 0.0, 40.0, 60.0]], np.float32)
    moved = tf.jitter_boxes(boxes, 40, 60, 0.3, np.random.default_rng(1))
    assert np.all((moved >= 0) & (moved <= [40, 60, 40, 60]))


def test_colour_coefficients():
    assert tf.colour_coefficients(1.0, 1.0, 1.0) == (1.0, 0.0, 0.0)  # identity
    assert tf.colour_coefficients(1.2, 1.0, 0.0) == (0.0, 1.2, 0.0)  # all grey, brighter
    assert tf.colour_coefficients(1.0, 0.0, 1.0) == (0.0, 0.0, 1.0)  # all the mean grey


@pytest.mark.parametrize("saturation", [0.0, 0.5, 1.5])
def test_grey_stays_grey(saturation: float):
    clip = np.full((1, 2, 2, 3), 100, np.uint8)
    clip[0, 0, 0] = 30
    k_pixel, k_grey, k_mean = tf.colour_coefficients(1.0, 1.0, saturation)
    assert k_mean == 0
    out = k_pixel * clip + k_grey * clip.astype(float).mean(axis=-1, keepdims=True)
    np.testing.assert_allclose(out, clip)


def test_colour_jitter_matches_stepwise_reference():
    clip = np.random.default_rng(0).integers(60, 180, (2, 4, 5, 3), dtype=np.uint8)
    aug = tf.Augment(box_jitter=0.0, flip_prob=0.0, brightness=0.3, contrast=0.3,
                     saturation=0.3)
    got = tf.colour_jitter(clip, aug, np.random.default_rng(5))
    draws = np.random.default_rng(5)  # the same draws, in the order brightness, contrast, sat
    bri, con, sat = (draws.uniform(0.7, 1.3) for _ in range(3))
    luma = np.array([0.299, 0.587, 0.114])
    x = clip.astype(np.float64) * bri
    x = con * x + (1 - con) * (x.reshape(-1, 3).mean(axis=0) @ luma)
    x = sat * x + (1 - sat) * (x @ luma)[..., None]
    np.testing.assert_allclose(got, np.clip(np.rint(x), 0, 255), atol=1)
    assert not np.array_equal(got, clip)


def test_colour_jitter_off_returns_the_clip():
    clip = np.full((1, 2, 2, 3), 7, np.uint8)
    assert tf.colour_jitter(clip, tf.Augment.off(), np.random.default_rng(0)) is clip


def test_top_by_score_is_stable():
    scores = np.array([0.5, 0.9, 0.5, 0.7], np.float32)
    assert tf.top_by_score(scores, 3).tolist() == [1, 3, 0]
    assert tf.top_by_score(scores, 10).tolist() == [1, 3, 0, 2]


@pytest.mark.parametrize(("count", "cap"), [(0, 3), (2, 3), (3, 3), (10, 3)])
def test_random_subset(count: int, cap: int):
    got = tf.random_subset(count, cap, np.random.default_rng(0))
    assert len(got) == min(count, cap)
    assert len(set(got.tolist())) == len(got)
    assert np.all(np.diff(got) > 0)
    assert np.all(got < max(count, 1))


def test_box_iou():
    a = np.array([[0, 0, 2, 2], [0, 0, 1, 1]], np.float32)
    b = np.array([[1, 1, 3, 3], [0, 0, 2, 2], [5, 5, 5, 5]], np.float32)
    np.testing.assert_allclose(tf.box_iou(a, b), [[1 / 7, 1, 0], [0, 0.25, 0]], rtol=1e-6)


@pytest.mark.parametrize("field", ["box_jitter", "brightness", "flip_prob"])
def test_augment_rejects_out_of_range(field: str):
    with pytest.raises(ValueError, match=field):
        tf.Augment(**{field: 1.5})
