"""Logits -> scores: softmax within single-label groups (AVA pose), sigmoid elsewhere."""

from __future__ import annotations

import torch

from model.config import ClassGroup, LossKind


def action_scores(logits: torch.Tensor, groups: tuple[ClassGroup, ...]) -> torch.Tensor:
    """logits [N,A] -> scores [N,A] in [0,1]; column a is action id a+1."""
    parts = []
    for group in sorted(groups, key=lambda g: g.first_id):
        chunk = logits[:, group.first_id - 1 : group.last_id]  # [N,|g|]
        parts.append(chunk.softmax(dim=1) if group.loss is LossKind.SOFTMAX else chunk.sigmoid())
    return torch.cat(parts, dim=1)
