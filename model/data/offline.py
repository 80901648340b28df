"""Whole videos in one decoding pass: every key frame of a video in order, for offline
inference (two-pass validation computes the memory features of all seconds, then the head),
and for filling the window cache (bench/loader_speed.py: one pass per video decodes about
3x more key frames per second than seeking to each window).

Persons come from the dataset's person source (the detector boxes of `eval_options`); nothing
is augmented. Seconds without any box still yield a clip (N = 0), since the memory of their
neighbours may still be wanted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from tqdm import tqdm

from model.data.batching import Batch, collate
from model.data.dataset import AvaDataset, warn_skip
from model.data.records import Sample, Skipped
from model.data.video import VideoError, iter_windows


def iter_video_samples(
    dataset: AvaDataset, video_id: str, seconds: Iterable[int] | None = None
) -> Iterator[Sample]:
    """Samples of `video_id` at `seconds` (None: every second from 0 to the end)."""
    info = dataset.video_info(video_id)
    for second, window in iter_windows(info.path, dataset.spec, seconds):
        yield dataset.make_sample((video_id, second), window, info, cached=False, rng=None)


def iter_video_batches(
    dataset: AvaDataset, video_id: str, batch_size: int, seconds: Iterable[int] | None = None
) -> Iterator[Batch]:
    """`iter_video_samples` grouped into Batches of up to `batch_size` consecutive seconds."""
    chunk: list[Sample] = []
    for sample in iter_video_samples(dataset, video_id, seconds):
        chunk.append(sample)
        if len(chunk) == batch_size:
            yield collate(chunk, dataset.num_classes)
            chunk = []
    if chunk:
        yield collate(chunk, dataset.num_classes)


def fill_cache(dataset: AvaDataset) -> int:
    """Decode every key frame of the dataset missing from its cache, one pass per video.

    Returns the number of windows written. A video that fails is warned about, recorded in
    `dataset.skipped` and left to the loader (which will skip the same key frames).
    """
    cache = dataset.cache
    if cache is None:
        raise ValueError("fill_cache needs a dataset built with LoaderOptions(cache_dir=...)")
    by_video: dict[str, list[int]] = {}
    for video_id, second in dataset.keys:
        by_video.setdefault(video_id, []).append(second)
    written = 0
    for video_id, seconds in tqdm(by_video.items(), desc="filling window cache", unit="video",
                                  leave=False):
        try:
            info = dataset.video_info(video_id)
            missing = [s for s in seconds if not cache.has(video_id, s, info.fingerprint)]
            if not missing:
                continue
            for second, window in iter_windows(info.path, dataset.spec, missing):
                cache.store(video_id, second, info.fingerprint, window)
                written += 1
        except VideoError as err:
            skipped = Skipped(video_id, None, str(err))
            dataset.skipped.append(skipped)
            warn_skip(skipped)
    return written
