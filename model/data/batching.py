"""Batches in the exact form of `AIA.forward`, and the DataLoader around the dataset.

Clips of a batch are padded bottom/right with zeros to the largest height and width; boxes
gain their clip index as column 0. `EpochSampler` yields `(epoch, index)` so workers, even
persistent ones, draw augmentation from (seed, epoch, index) and never from their own state.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from model.data.dataset import AvaDataset
from model.data.records import ClipMeta, Sample, Skipped


@dataclass(frozen=True)
class Batch:
    clip: torch.Tensor  # uint8 [B,T,H,W,3]
    person_boxes: torch.Tensor  # float32 [N,5] clip index, x1, y1, x2, y2 (pixels)
    object_boxes: torch.Tensor  # float32 [K,5] same; objects of a clip by score
    targets: torch.Tensor  # float32 [N,A] multi-hot, column a = action a+1
    person_ids: torch.Tensor  # int64 [N], -1 unknown
    person_scores: torch.Tensor  # float32 [N]
    person_boxes_norm: torch.Tensor  # float32 [N,4] normalised, as in the file
    object_scores: torch.Tensor  # float32 [K]
    object_categories: torch.Tensor  # int64 [K]
    clips: tuple[ClipMeta, ...]  # [B]
    skipped: tuple[Skipped, ...]  # items of this batch that could not be loaded

    @property
    def num_clips(self) -> int:
        return len(self.clips)

    @property
    def person_batch(self) -> torch.Tensor:
        """[N] clip index of each person."""
        return self.person_boxes[:, 0].long()

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Batch:
        moved = {f.name: fn(getattr(self, f.name))
                 for f in fields(self) if isinstance(getattr(self, f.name), torch.Tensor)}
        return replace(self, **moved)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> Batch:
        """Called by DataLoader(pin_memory=True)."""
        return self._map(lambda t: t.pin_memory())


def _boxes(samples: Sequence[Sample], name: str) -> torch.Tensor:
    """Per-sample [n,4] pixel boxes -> [sum n,5] with the clip index first."""
    parts = []
    for i, sample in enumerate(samples):
        boxes = getattr(sample, name)
        parts.append(np.concatenate([np.full((len(boxes), 1), i, np.float32), boxes], axis=1))
    return torch.from_numpy(np.concatenate(parts) if parts else np.zeros((0, 5), np.float32))


def _cat(samples: Sequence[Sample], name: str, dtype: np.dtype, width: int | None = None
         ) -> torch.Tensor:
    parts = [np.asarray(getattr(s, name), dtype=dtype) for s in samples]
    if parts:
        return torch.from_numpy(np.concatenate(parts))
    return torch.from_numpy(np.zeros((0,) if width is None else (0, width), dtype=dtype))


def _pad_clips(samples: Sequence[Sample]) -> torch.Tensor:
    if not samples:
        return torch.zeros(0, 0, 0, 0, 3, dtype=torch.uint8)
    frames = samples[0].clip.shape[0]
    height = max(s.clip.shape[1] for s in samples)
    width = max(s.clip.shape[2] for s in samples)
    clip = torch.zeros(len(samples), frames, height, width, 3, dtype=torch.uint8)
    for i, s in enumerate(samples):
        h, w = s.clip.shape[1:3]
        clip[i, :, :h, :w] = torch.from_numpy(s.clip)
    return clip


def collate(items: Sequence[Sample | Skipped], num_classes: int) -> Batch:
    """Samples -> Batch; Skipped items are left out of the tensors and listed in `skipped`."""
    samples = [s for s in items if isinstance(s, Sample)]
    return Batch(
        clip=_pad_clips(samples),
        person_boxes=_boxes(samples, "person_boxes"),
        object_boxes=_boxes(samples, "object_boxes"),
        targets=_cat(samples, "targets", np.dtype(np.float32), num_classes),
        person_ids=_cat(samples, "person_ids", np.dtype(np.int64)),
        person_scores=_cat(samples, "person_scores", np.dtype(np.float32)),
        person_boxes_norm=_cat(samples, "person_boxes_norm", np.dtype(np.float32), 4),
        object_scores=_cat(samples, "object_scores", np.dtype(np.float32)),
        object_categories=_cat(samples, "object_categories", np.dtype(np.int64)),
        clips=tuple(s.meta for s in samples),
        skipped=tuple(s for s in items if isinstance(s, Skipped)),
    )


class EpochSampler(Sampler[tuple[int, int]]):
    """Yields (epoch, index); the order is a function of (seed, epoch). Call `set_epoch`.

    With `world` > 1 each rank takes every world-th item of the epoch's order (all ranks the
    same count); `set_epoch(e, start)` skips the first `start` items of this rank's share, so
    a resumed run continues mid-epoch without decoding what it already trained on.
    """

    def __init__(self, size: int, shuffle: bool, seed: int, rank: int = 0,
                 world: int = 1) -> None:
        self.size, self.shuffle, self.seed, self.epoch = size, shuffle, seed, 0
        self.rank, self.world, self.start = rank, world, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return self.size // self.world - self.start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = (np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
                 if self.shuffle else np.arange(self.size))
        share = order[self.rank :: self.world][: self.size // self.world]
        return ((self.epoch, int(i)) for i in share[self.start :])


def worker_init(worker_id: int) -> None:
    """One thread per worker (workers are the parallelism); seed the global generators too."""
    del worker_id  # the seed torch derives per worker already includes it
    torch.set_num_threads(1)
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def make_loader(dataset: AvaDataset, batch_size: int, workers: int = 0, shuffle: bool = False,
                drop_last: bool = False, pin_memory: bool = False,
                persistent_workers: bool = False) -> DataLoader:
    """DataLoader of Batches; `loader.sampler.set_epoch(e)` before each epoch."""
    seed = dataset.options.seed
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=EpochSampler(len(dataset), shuffle, seed),
        num_workers=workers,
        collate_fn=functools.partial(collate, num_classes=dataset.num_classes),
        drop_last=drop_last,
        pin_memory=pin_memory,
        worker_init_fn=worker_init,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=persistent_workers and workers > 0,
    )
