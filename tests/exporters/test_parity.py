"""The parity harness itself: padding, memory layouts, the pass/fail rule, the cases."""

from __future__ import annotations

import numpy as np
import pytest

from exporters.artifact import InputSpec
from exporters.graphs import Dtype, ExportError
from exporters.parity import (
    FP32_TOLERANCE,
    compare,
    memory_layout,
    pad_objects,
    parity_cases,
    tolerance,
)
from model.config import preset


def test_pad_objects_keeps_order_and_caps_per_clip() -> None:
    feats = np.arange(6, dtype=np.float32)[:, None].repeat(2, axis=1)  # row i is [i, i]
    padded, mask = pad_objects(feats, np.array([1, 0, 1, 1, 0, 1]), clips=3, cap=3)
    assert padded.shape == (3, 3, 2)
    assert mask.tolist() == [[True, True, False], [True, True, True], [False, False, False]]
    assert padded[1, :, 0].tolist() == [0, 2, 3]  # clip 1's fourth object (row 5) dropped
    assert padded[0, :2, 0].tolist() == [1, 4]


def test_pad_objects_without_objects_has_no_slot() -> None:
    padded, mask = pad_objects(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), 2, 5)
    assert padded.shape == (2, 0, 4)
    assert mask.shape == (2, 0)


def test_memory_layout_empty_full_and_partial() -> None:
    spec = InputSpec.from_config(preset("tiny"))  # 4 s each way, 3 per second
    mask, seconds = memory_layout(spec, [0.0])
    assert mask.shape == seconds.shape == (1, 0)
    mask, seconds = memory_layout(spec, [1.0, 0.5])
    assert mask.shape == (2, 24)
    assert mask[0].all()
    assert mask[1].sum() == 12
    assert seconds[0, :3].tolist() == [-4, -4, -4]
    assert 0 not in seconds


def logits(*rows: list[float]) -> np.ndarray:
    return np.array(rows, np.float32)


def test_fp32_needs_the_same_top_label_even_for_near_ties() -> None:
    feats = np.zeros((2, 3), np.float32)
    ref = logits([1.0, 1.00001, 0.0])
    swapped = logits([1.00001, 1.0, 0.0])
    result = compare("tie", (feats, ref), (feats, swapped), Dtype.FP32, None)
    assert result.max_abs_logits <= FP32_TOLERANCE
    assert not result.passed
    assert compare("same", (feats, ref), (feats, ref + 5e-5), Dtype.FP32, None).passed
    assert not compare("far", (feats, ref), (feats, ref + 2e-4), Dtype.FP32, None).passed


def test_fp16_excuses_near_ties_only() -> None:
    feats = np.zeros((2, 3), np.float32)
    ref = logits([2.0, 1.99, 0.0], [3.0, 0.0, 1.0])
    tie_swapped = logits([1.99, 2.0, 0.0], [3.0, 0.0, 1.0])
    result = compare("fp16", (feats, ref), (feats, tie_swapped), Dtype.FP16, None)
    assert result.passed
    assert result.near_ties == 1
    assert result.top_label_same == 1
    clear_swapped = logits([2.0, 1.99, 0.0], [0.0, 3.0, 1.0])
    assert not compare("fp16", (feats, ref), (feats, clear_swapped), Dtype.FP16, None).passed


def test_shape_mismatch_fails() -> None:
    feats = np.zeros((1, 3), np.float32)
    result = compare("shape", (feats, logits([1.0, 0.0])), (feats, np.zeros((0, 2), np.float32)),
                     Dtype.FP32, None)
    assert not result.passed


@pytest.mark.parametrize(("dtype", "scale", "expected"),
                         [(Dtype.FP32, 50.0, 1e-4), (Dtype.FP16, 0.3, 0.02),
                          (Dtype.FP16, 10.0, 0.2)])
def test_documented_bounds(dtype, scale, expected) -> None:
    assert tolerance(dtype, scale) == pytest.approx(expected)


def test_cases_cover_persons_memory_and_decoded_clips(tmp_path) -> None:
    cfg = preset("tiny").replace(input={"short_side": 48, "max_long_side": 64})
    cases = parity_cases(cfg, tmp_path)
    persons = {len(c.persons) for c in cases}
    assert {0, 1} <= persons
    assert max(persons) > cfg.ia.max_persons
    assert any(c.memory_mask.shape[1] == 0 for c in cases)
    assert any(c.memory_mask.all() and c.memory_mask.shape[1] == 24 for c in cases)
    decoded = [c for c in cases if c.name.startswith("decoded")]
    assert decoded
    assert all(c.clip.shape[1:] == (16, 48, 64, 3) for c in decoded)
    # a decoded clip is the toy scene, not noise: grey background, a red person bottom left
    frame = decoded[0].clip[0, 8].astype(int)  # [48,64,3]
    assert np.abs(frame[14, 32] - 60).max() <= 8
    red, green, _ = frame[40, 11]
    assert red > 180
    assert green < 70
    sizes = {c.clip.shape[2:4] for c in cases}
    assert len(sizes) >= 3
    assert (40, 56) not in sizes
    for c in cases:
        h, w = c.clip.shape[2:4]
        assert min(h, w) >= 32
        assert max(h, w) <= 64
        for boxes in (c.persons, c.objects, c.memory_boxes):
            assert (boxes[:, 3] <= w).all()
            assert (boxes[:, 4] <= h).all()


def test_parity_frames_must_stay_in_the_exported_range(tmp_path) -> None:
    with pytest.raises(ExportError, match="parity short side 16"):
        parity_cases(preset("tiny"), tmp_path, short_side=16)
