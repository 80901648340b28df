"""Training losses (kept outside `forward`): focal losses per class group, weighted."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from model.config import ClassGroup, LossKind


class ActionLoss(NamedTuple):
    total: torch.Tensor  # scalar
    groups: dict[str, torch.Tensor]  # unweighted per-group loss


def softmax_focal(logits: torch.Tensor, targets: torch.Tensor, gamma: float) -> torch.Tensor:
    """logits, targets [N,G] (multi-hot, renormalised) -> mean over rows that have a label."""
    labelled = targets.sum(dim=1) > 0  # [N]
    dist = targets / targets.sum(dim=1, keepdim=True).clamp(min=1e-12)
    log_p = F.log_softmax(logits, dim=1)
    per_row = -(dist * (1 - log_p.exp()).pow(gamma) * log_p).sum(dim=1)  # [N]
    count = labelled.sum()
    return (per_row * labelled).sum() / count.clamp(min=1)


def sigmoid_focal(logits: torch.Tensor, targets: torch.Tensor, gamma: float) -> torch.Tensor:
    """logits, targets [N,G] -> mean over all N*G elements."""
    if logits.numel() == 0:
        return logits.sum()
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    return (ce * (1 - p_t).pow(gamma)).mean()


def action_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    groups: tuple[ClassGroup, ...],
    gamma: float = 2.0,
) -> ActionLoss:
    """logits, targets [N,A] (targets multi-hot, column a = action id a+1) -> weighted sum."""
    parts: dict[str, torch.Tensor] = {}
    total = logits.sum() * 0.0  # stays in the graph when N = 0
    for group in groups:
        cols = slice(group.first_id - 1, group.last_id)
        focal = softmax_focal if group.loss is LossKind.SOFTMAX else sigmoid_focal
        parts[group.name] = focal(logits[:, cols], targets[:, cols], gamma)
        total = total + group.weight * parts[group.name]
    return ActionLoss(total, parts)
