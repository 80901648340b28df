"""Random-weight checkpoints for export checks (tests, the r50 export benchmark).

Parity must see every part of the network at work, so the zero-initialised parts of a fresh
model (residual scales, IA output projections, memory positions) get small non-zero values,
and linear layers unit-gain weights, keeping features and logits at unit scale.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from model.backbone import FrozenBatchNorm3d
from model.config import AVA_GROUPS, ModelConfig, to_dict
from model.labels import Label, ava_labels
from model.network import AIA
from model.train import checkpoint as ckpt
from model.train.config import TrainConfig
from model.train.config import to_dict as train_to_dict


def randomise(model: nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                std = 1.0 / math.sqrt(module.in_features)
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * std)
                module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.05)
            elif isinstance(module, FrozenBatchNorm3d):
                # zero-initialised residual scales start small, the others near 1
                low, high = (0.1, 0.3) if not module.weight.any() else (0.8, 1.2)
                module.weight.copy_(torch.rand(module.weight.shape, generator=gen)
                                    * (high - low) + low)
                module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.05)
        for name, param in model.named_parameters():
            if name.endswith(("pos_key", "pos_value")) or "dense_mix" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.5)


def labels_for(cfg: ModelConfig) -> tuple[Label, ...]:
    """AVA's table for AVA's classes, else generic names grouped as the config's groups."""
    if cfg.classifier.groups == AVA_GROUPS:
        return ava_labels()
    return tuple(Label(i, f"action {i}", g.name, True) for g in cfg.classifier.groups
                 for i in range(g.first_id, g.last_id + 1))


def random_checkpoint(cfg: ModelConfig, path: Path, seed: int = 0) -> Path:
    """A checkpoint in the training format (`aia-checkpoint/1`) with random weights."""
    torch.manual_seed(seed)
    model = AIA(cfg)
    randomise(model, seed)
    state = {
        "format": ckpt.FORMAT, "step": 0, "model_config": to_dict(cfg),
        "train_config": train_to_dict(TrainConfig()), "model": model.state_dict(),
        "labels": [[lb.id, lb.name, lb.group, lb.evaluated] for lb in labels_for(cfg)],
        "history": {"best_map": -1.0},
    }
    ckpt.save_atomic(state, path)
    return path
