"""Ragged-to-padded helpers for persons and objects grouped by clip.

Only dense tensor ops (comparisons, cumulative sums, matmuls), no boolean indexing, so the
same code runs in eager, TorchScript and ONNX graphs with dynamic N, K and B.
"""

from __future__ import annotations

import torch


def rank_in_clip(batch: torch.Tensor) -> torch.Tensor:
    """batch [N] clip index of each row -> [N] how many earlier rows share its clip."""
    same = batch.unsqueeze(0) == batch.unsqueeze(1)  # [N,N]
    earlier = torch.ones_like(same).tril(diagonal=-1)  # row i, columns j < i
    return (same & earlier).sum(dim=1)


def pad_per_clip(
    feats: torch.Tensor, batch: torch.Tensor, num_clips: int, cap: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """feats [K,D] with clip index batch [K] -> ([num_clips,cap,D], mask [num_clips,cap]).

    Rows keep their order within a clip; rows past `cap` in a clip are dropped, so callers
    sort by priority (detector score) first.
    """
    rank = rank_in_clip(batch)
    slot = batch * cap + rank  # [K] target slot in the flattened [B*cap] layout
    valid = rank < cap
    targets = torch.arange(num_clips * cap, device=feats.device)
    assign = (slot.unsqueeze(0) == targets.unsqueeze(1)) & valid.unsqueeze(0)  # [B*cap,K]
    padded = assign.to(feats.dtype) @ feats  # [B*cap,D]
    mask = assign.sum(dim=1) > 0  # not any(): ONNX ReduceMax of an empty axis is not False
    return padded.view(num_clips, cap, feats.shape[-1]), mask.view(num_clips, cap)
