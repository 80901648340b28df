"""Decoded windows on disk: hits return the decoder's arrays, stale or broken files miss."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from model.config import ModelConfig
from model.data.cache import WindowCache
from model.data.dataset import AvaDataset, SkippedVideoWarning, train_options
from model.data.offline import fill_cache
from model.data.records import Sample
from model.data.transforms import Augment
from model.data.video import WindowSpec, read_window

SPEC = WindowSpec(8, 25.0, 32, 64)


def load(ds: AvaDataset, key: tuple[str, int], epoch: int = 0) -> Sample:
    item = ds[(epoch, ds.keys.index(key))]
    assert isinstance(item, Sample)
    return item


@pytest.mark.parametrize("augment", [Augment.off(), Augment(0.1, 1.0, 0.2, 0.2, 0.2)])
def test_hit_returns_identical_arrays(toy_root: Path, small_cfg: ModelConfig, tmp_path: Path,
                                      augment: Augment):
    options = train_options(cache_dir=tmp_path / "cache", augment=augment)
    ds = AvaDataset(toy_root, "train", small_cfg, options)
    miss = load(ds, ("three", 1))
    hit = load(ds, ("three", 1))
    assert not miss.meta.cached
    assert hit.meta.cached
    # augmentation runs after the cache, from the same (seed, epoch, index)
    np.testing.assert_array_equal(hit.clip, miss.clip)
    np.testing.assert_array_equal(hit.person_boxes, miss.person_boxes)
    # a fresh dataset (another process, another run) finds the same file
    again = AvaDataset(toy_root, "train", small_cfg, options)
    assert load(again, ("three", 1)).meta.cached


def test_cached_window_equals_decoded(toy_root: Path, small_cfg: ModelConfig, tmp_path: Path):
    ds = AvaDataset(toy_root, "train", small_cfg, train_options(cache_dir=tmp_path))
    decoded, info, from_cache = ds.window(("one", 2))
    assert not from_cache
    assert ds.cache is not None
    path = ds.cache.path("one", 2, info.fingerprint)
    np.testing.assert_array_equal(np.load(path), decoded)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary files left


def test_changed_video_misses(toy_copy: Path, small_cfg: ModelConfig, tmp_path: Path):
    options = train_options(cache_dir=tmp_path / "cache")
    assert not load(AvaDataset(toy_copy, "train", small_cfg, options), ("one", 1)).meta.cached
    video = toy_copy / "videos" / "one.mp4"
    stat = video.stat()
    os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert not load(AvaDataset(toy_copy, "train", small_cfg, options), ("one", 1)).meta.cached


@pytest.mark.parametrize("damage", [b"", b"\x93NUMPY garbage", None])
def test_broken_cache_file_is_a_miss_and_rewritten(tmp_path: Path, damage: bytes | None):
    cache = WindowCache(tmp_path, SPEC)
    window = np.random.default_rng(0).integers(0, 255, (8, 4, 5, 3), dtype=np.uint8)
    path = cache.store("v", 3, "fp", window)
    if damage is None:  # a valid array of the wrong shape (another spec) also misses
        np.save(path, window[:4])
    else:
        path.write_bytes(damage)
    assert cache.load("v", 3, "fp") is None
    cache.store("v", 3, "fp", window)
    np.testing.assert_array_equal(cache.load("v", 3, "fp"), window)


def test_paths_separate_specs_and_sources(tmp_path: Path):
    a = WindowCache(tmp_path, SPEC)
    b = WindowCache(tmp_path, WindowSpec(16, 25.0, 32, 64))
    assert a.path("v", 1, "fp") != b.path("v", 1, "fp")
    assert a.path("v", 1, "fp") != a.path("v", 1, "fp2")
    assert a.path("v", 1, "fp") != a.path("v", 2, "fp")
    assert a.load("v", 1, "fp") is None


def test_fill_cache_one_pass_per_video(toy_copy: Path, small_cfg: ModelConfig, tmp_path: Path):
    (toy_copy / "videos" / "portrait.mp4").write_bytes(b"\x00" * 4096)
    options = train_options(cache_dir=tmp_path / "cache", augment=Augment.off(),
                            probe_videos=False)
    ds = AvaDataset(toy_copy, "train", small_cfg, options)
    first = load(ds, ("one", 1))  # already cached: not written again
    with pytest.warns(SkippedVideoWarning, match="portrait"):
        written = fill_cache(ds)
    assert written == len(ds) - 1 - 2  # all but the one cached and portrait's two
    assert [s.video_id for s in ds.skipped] == ["portrait"]
    with pytest.warns(SkippedVideoWarning, match="portrait"):
        assert fill_cache(ds) == 0  # nothing left to write
    for video, second in ds.keys:
        if video == "portrait":
            continue
        hit = load(ds, (video, second))
        assert hit.meta.cached
        decoded = read_window(toy_copy / "videos" / f"{video}.mp4", second, ds.spec)
        np.testing.assert_array_equal(hit.clip, decoded)  # streamed == random access
    np.testing.assert_array_equal(load(ds, ("one", 1)).clip, first.clip)
