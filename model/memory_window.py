"""The memory window as graph 2 reads it: person features per second -> the memory input.

Slots are whole seconds around the key frame, `-memory_before .. +memory_after`, second 0
left out (the clip's own persons join it inside the graph), at most `persons_per_second` each.
Validation (model.train.validate) and the service (service.window) both build graph 2's
memory input here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from model.config import ModelConfig


@dataclass(frozen=True)
class SecondFeatures:
    persons: torch.Tensor  # [n,D]
    boxes: torch.Tensor  # [n,4] normalised, as the detector gave them
    objects: torch.Tensor  # [k,D], highest score first


def memory_for(cfg: ModelConfig, seconds: Mapping[int, SecondFeatures],
               t: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Neighbour seconds of t (past and future): memory [1,M,D], mask [1,M], seconds [1,M]."""
    k, d = cfg.ia.persons_per_second, cfg.feature_dim
    feats, offsets = [], []
    for offset in range(-cfg.ia.memory_before, cfg.ia.memory_after + 1):
        entry = seconds.get(t + offset)
        if offset == 0 or entry is None:
            continue
        feats.append(entry.persons[:k])
        offsets += [offset] * len(entry.persons[:k])
    memory = torch.cat(feats) if feats else torch.zeros(0, d)
    return (memory.unsqueeze(0), torch.ones(1, len(offsets), dtype=torch.bool),
            torch.tensor(offsets, dtype=torch.long).view(1, -1))
