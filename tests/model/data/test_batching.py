"""Batches: padding, box columns, skipped items, workers and seeds, and the network's input."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest
import torch

from model.config import ModelConfig
from model.data.batching import Batch, EpochSampler, collate, make_loader
from model.data.dataset import AvaDataset, eval_options, train_options
from model.data.records import Sample, Skipped
from model.network import build_aia, empty_memory

from .conftest import NUM_CLASSES


def samples(ds: AvaDataset, keys: list[tuple[str, int]]) -> list[Sample]:
    out = [ds[ds.keys.index(k)] for k in keys]
    assert all(isinstance(s, Sample) for s in out)
    return out  # type: ignore[return-value]


def test_clips_pad_bottom_right_with_zeros(toy_root: Path, small_cfg: ModelConfig):
    ds = AvaDataset(toy_root, "train", small_cfg)
    landscape, portrait = samples(ds, [("one", 1), ("portrait", 1)])
    batch = collate([landscape, portrait], NUM_CLASSES)
    assert landscape.clip.shape[1:3] == (32, 43)
    assert portrait.clip.shape[1:3] == (43, 32)
    assert batch.clip.shape == (2, 8, 43, 43, 3)
    assert batch.clip.dtype == torch.uint8
    assert torch.equal(batch.clip[0, :, :32], torch.from_numpy(landscape.clip))
    assert batch.clip[0, :, 32:].eq(0).all()
    assert torch.equal(batch.clip[1, :, :, :32], torch.from_numpy(portrait.clip))
    assert batch.clip[1, :, :, 32:].eq(0).all()
    assert [m.size for m in batch.clips] == [(32, 43), (43, 32)]
    assert [m.original_size for m in batch.clips] == [(48, 64), (64, 48)]


def test_box_columns_and_per_person_rows(toy_root: Path, small_cfg: ModelConfig):
    ds = AvaDataset(toy_root, "train", small_cfg)
    parts = samples(ds, [("three", 1), ("one", 1), ("portrait", 0)])
    batch = collate(parts, NUM_CLASSES)
    assert batch.person_boxes.shape == (6, 5)
    assert batch.person_batch.tolist() == [0, 0, 0, 1, 2, 2]
    assert batch.object_boxes[:, 0].tolist() == [0, 0, 0, 1, 2, 2]
    assert batch.targets.shape == (6, NUM_CLASSES)
    assert batch.targets.dtype == torch.float32
    assert torch.equal(batch.person_boxes[3, 1:], torch.from_numpy(parts[1].person_boxes[0]))
    assert batch.person_ids.tolist() == [0, 1, 2, 0, 0, 1]
    assert batch.object_scores.shape == batch.object_categories.shape == (6,)
    assert batch.person_boxes_norm.shape == (6, 4)


def test_no_persons_and_skipped_items(toy_root: Path, small_cfg: ModelConfig):
    ds = AvaDataset(toy_root, "val", small_cfg, eval_options())
    weak = ds[ds.keys.index(("weak", 0))]
    gone = Skipped("lost", 3, "lost.mp4: cannot open video")
    batch = collate([weak, gone], NUM_CLASSES)  # type: ignore[list-item]
    assert batch.num_clips == 1
    assert batch.person_boxes.shape == (0, 5)
    assert batch.targets.shape == (0, NUM_CLASSES)
    assert batch.skipped == (gone,)
    empty = collate([gone], NUM_CLASSES)
    assert empty.num_clips == 0
    assert empty.clip.shape[0] == 0
    assert empty.object_boxes.shape == (0, 5)


def test_batch_is_frozen_and_moves(toy_root: Path, small_cfg: ModelConfig):
    ds = AvaDataset(toy_root, "train", small_cfg)
    batch = collate(samples(ds, [("one", 0)]), NUM_CLASSES)
    moved = batch.to("cpu")
    assert isinstance(moved, Batch)
    assert torch.equal(moved.clip, batch.clip)
    assert moved.clips == batch.clips
    with pytest.raises(dataclasses.FrozenInstanceError):
        batch.clip = moved.clip  # type: ignore[misc]


@pytest.mark.parametrize("split_options", ["train", "eval"])
def test_batch_feeds_the_training_model(toy_root: Path, small_cfg: ModelConfig,
                                        split_options: str):
    options = train_options() if split_options == "train" else eval_options()
    ds = AvaDataset(toy_root, "train", small_cfg, options)
    batch = next(iter(make_loader(ds, batch_size=4, shuffle=True)))
    model = build_aia(small_cfg).eval()
    with torch.no_grad():
        out = model(batch.clip, batch.person_boxes, batch.object_boxes,
                    *empty_memory(small_cfg, batch.num_clips))
    assert out.logits.shape == batch.targets.shape
    assert torch.isfinite(out.logits).all()


def batches_as_lists(ds: AvaDataset, workers: int, epoch: int) -> list[tuple]:
    loader = make_loader(ds, batch_size=3, workers=workers, shuffle=True)
    loader.sampler.set_epoch(epoch)  # type: ignore[union-attr]
    return [(tuple((m.video_id, m.timestamp, m.flipped) for m in b.clips),
             b.person_boxes.tolist(), b.clip.float().mean().item()) for b in loader]


def test_workers_and_seeds_are_deterministic(toy_root: Path, small_cfg: ModelConfig):
    ds = AvaDataset(toy_root, "train", small_cfg, train_options(seed=7))
    copy = pickle.loads(pickle.dumps(ds))  # what a spawned worker receives
    assert copy.keys == ds.keys
    assert torch.equal(torch.from_numpy(copy[(1, 4)].person_boxes),
                       torch.from_numpy(ds[(1, 4)].person_boxes))
    serial = batches_as_lists(ds, workers=0, epoch=1)
    assert batches_as_lists(ds, workers=2, epoch=1) == serial
    assert sum(len(b[0]) for b in serial) == len(ds)
    assert batches_as_lists(ds, workers=0, epoch=2) != serial


def test_worker_skips_broken_video(toy_copy: Path, small_cfg: ModelConfig):
    (toy_copy / "videos" / "portrait.mp4").write_bytes(b"\x00" * 4096)
    ds = AvaDataset(toy_copy, "train", small_cfg, train_options(probe_videos=False))
    loaded, skipped = 0, []
    for batch in make_loader(ds, batch_size=4, workers=2):
        loaded += batch.num_clips
        skipped += batch.skipped
    assert sorted((s.video_id, s.timestamp) for s in skipped) == [("portrait", 0),
                                                                  ("portrait", 1)]
    assert all("portrait.mp4" in s.reason for s in skipped)
    assert loaded == len(ds) - 2


def test_epoch_sampler():
    sampler = EpochSampler(10, shuffle=True, seed=3)
    first = list(sampler)
    assert sorted(i for _, i in first) == list(range(10))
    assert {e for e, _ in first} == {0}
    assert list(sampler) == first
    sampler.set_epoch(1)
    second = list(sampler)
    assert [i for _, i in second] != [i for _, i in first]
    assert {e for e, _ in second} == {1}
    assert [i for _, i in EpochSampler(4, shuffle=False, seed=3)] == [0, 1, 2, 3]
