"""Whole-video iteration for offline inference: every second, one decoding pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model.config import ModelConfig
from model.data.dataset import AvaDataset, eval_options
from model.data.offline import iter_video_batches, iter_video_samples


@pytest.fixture(scope="module")
def val(toy_root: Path, small_cfg: ModelConfig) -> AvaDataset:
    return AvaDataset(toy_root, "val", small_cfg, eval_options())


def test_every_second_in_order(val: AvaDataset):
    batches = list(iter_video_batches(val, "one", batch_size=3))
    assert [b.num_clips for b in batches] == [3, 1]
    assert [m.timestamp for b in batches for m in b.clips] == [0, 1, 2, 3]
    assert all(m.video_id == "one" and not m.flipped for b in batches for m in b.clips)
    assert [b.person_batch.tolist() for b in batches] == [[0, 1, 2], [0]]


@pytest.mark.parametrize(("video", "persons"), [("weak", 0), ("three", 3)])
def test_windows_and_boxes_match_random_access(val: AvaDataset, video: str, persons: int):
    for sample in iter_video_samples(val, video):
        key = (video, sample.meta.timestamp)
        expected = val[val.keys.index(key)]
        np.testing.assert_array_equal(sample.clip, expected.clip)  # type: ignore[union-attr]
        np.testing.assert_array_equal(sample.person_boxes,
                                      expected.person_boxes)  # type: ignore[union-attr]
        assert len(sample.person_boxes) == persons


def test_seconds_without_labels_still_yield(val: AvaDataset, toy_root: Path,
                                            small_cfg: ModelConfig):
    got = [s.meta.timestamp for s in iter_video_samples(val, "one", seconds=[3, 1])]
    assert got == [1, 3]
    limited = AvaDataset(toy_root, "val", small_cfg, eval_options(person_threshold=0.99))
    assert all(len(s.person_boxes) == 0 for s in iter_video_samples(limited, "one"))
