"""Where a training step's memory (neighbouring seconds' person features) comes from.

- `amu`: the AMU feature bank (Algorithm 1): read with the loss-tag penalty, written after the
  step with this step's person features and loss (gathered from every rank).
- `joint`: each neighbour clip is decoded and forwarded through the network with gradients in
  the same step: exact, and as costly as the paper's Figure 5 says.
- `frozen`: neighbours forwarded once through a frozen copy of the initial network and cached
  (LFB-style).
- `none`: no memory.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Protocol

import torch

from model.bank import BankWrite, FeatureBank, MemoryInput
from model.config import ModelConfig
from model.data.batching import Batch
from model.data.dataset import AvaDataset
from model.data.video import VideoError
from model.network import AIA
from model.train.config import MemoryConfig, MemoryMode

Gather = Callable[[list[BankWrite]], list[BankWrite]]


class MemorySource(Protocol):
    def read(self, batch: Batch, model: AIA) -> MemoryInput: ...

    def after_step(self, batch: Batch, person_features: torch.Tensor, loss: float) -> None: ...


def empty_window(cfg: ModelConfig, num_clips: int, device: torch.device) -> MemoryInput:
    d = cfg.feature_dim
    return MemoryInput(torch.zeros(num_clips, 0, d, device=device),
                        torch.zeros(num_clips, 0, dtype=torch.bool, device=device),
                        torch.zeros(num_clips, 0, dtype=torch.long, device=device))


class NoMemory:
    def __init__(self, cfg: ModelConfig) -> None:
        self.cfg = cfg

    def read(self, batch: Batch, model: AIA) -> MemoryInput:
        return empty_window(self.cfg, batch.num_clips, batch.clip.device)

    def after_step(self, batch: Batch, person_features: torch.Tensor, loss: float) -> None:
        return None


class BankMemory:
    """`amu`: reads and writes the shared feature bank; `gather` collects all ranks' writes."""

    def __init__(self, cfg: ModelConfig, mem: MemoryConfig, gather: Gather) -> None:
        self.bank = FeatureBank(cfg.feature_dim, cfg.ia.persons_per_second, cfg.ia.memory_before,
                                cfg.ia.memory_after, mem.bank_capacity,
                                torch.float16 if mem.bank_half else torch.float32)
        self.gather = gather

    def read(self, batch: Batch, model: AIA) -> MemoryInput:
        return self.bank.read([c.video_id for c in batch.clips],
                              [c.timestamp for c in batch.clips], device=batch.clip.device)

    def after_step(self, batch: Batch, person_features: torch.Tensor, loss: float) -> None:
        writes = self.bank.writes_for_step([c.video_id for c in batch.clips],
                                           [c.timestamp for c in batch.clips],
                                           person_features, batch.person_batch, loss)
        self.bank.merge(self.gather(writes))
        self.bank.set_loss(loss)


class NeighbourMemory:
    """`joint` (with gradients through `model`) or `frozen` (a frozen copy, cached)."""

    def __init__(self, cfg: ModelConfig, dataset: AvaDataset, frozen_from: AIA | None) -> None:
        self.cfg, self.dataset = cfg, dataset
        self.frozen = None if frozen_from is None else copy.deepcopy(frozen_from).eval()
        if self.frozen is not None:
            self.frozen.requires_grad_(False)
        self.cache: dict[tuple[str, int], torch.Tensor] = {}

    def neighbour(self, model: AIA, video: str, second: int,
                  device: torch.device) -> torch.Tensor | None:
        """Person features [n<=K,D] of one neighbouring second, or None if unavailable."""
        key = (video, second)
        if self.frozen is not None and key in self.cache:
            return self.cache[key].to(device)
        try:
            window, info, _ = self.dataset.window(key)
        except VideoError:
            return None  # before the start or past the end of the video
        sample = self.dataset.make_sample(key, window, info, cached=False, rng=None)
        boxes = torch.from_numpy(sample.person_boxes[: self.cfg.ia.persons_per_second])
        if len(boxes) == 0:
            return None
        boxes = torch.cat([torch.zeros(len(boxes), 1), boxes], dim=1).to(device)
        clip = torch.from_numpy(sample.clip).unsqueeze(0).to(device)
        if self.frozen is None:
            return model.features(clip, boxes)  # joint: gradients flow into the backbone
        self.frozen.to(device)
        with torch.no_grad():
            feats = self.frozen.features(clip, boxes)
        self.cache[key] = feats.cpu()
        return feats

    def read(self, batch: Batch, model: AIA) -> MemoryInput:
        k, device = self.cfg.ia.persons_per_second, batch.clip.device
        window = self.cfg.ia.window
        b, m, d = batch.num_clips, window.slots, self.cfg.feature_dim
        rows: list[torch.Tensor] = []
        mask = torch.zeros(b, m, dtype=torch.bool, device=device)
        for i, clip in enumerate(batch.clips):
            slots = []
            for j, offset in enumerate(window.neighbours()):
                feats = self.neighbour(model, clip.video_id, clip.timestamp + offset, device)
                block = torch.zeros(k, d, device=device)
                if feats is not None:
                    block = torch.cat([feats, block[len(feats):]], dim=0)  # keeps the graph
                    mask[i, j * k : j * k + len(feats)] = True
                slots.append(block)
            rows.append(torch.cat(slots, dim=0) if slots else torch.zeros(0, d, device=device))
        seconds = torch.from_numpy(window.slot_seconds()).to(device).expand(b, m)  # [B,M]
        return MemoryInput(torch.stack(rows), mask, seconds.clone())

    def after_step(self, batch: Batch, person_features: torch.Tensor, loss: float) -> None:
        return None


def build_memory(
    mode: MemoryMode,
    cfg: ModelConfig,
    mem: MemoryConfig,
    dataset: AvaDataset,
    model: AIA,
    gather: Gather,
) -> MemorySource:
    if mode is MemoryMode.AMU:
        return BankMemory(cfg, mem, gather)
    if mode is MemoryMode.JOINT:
        return NeighbourMemory(cfg, dataset, None)
    if mode is MemoryMode.FROZEN:
        return NeighbourMemory(cfg, dataset, model)
    return NoMemory(cfg)
