"""SGD with the reference's parameter groups, and the warm-up + step learning-rate schedule."""

from __future__ import annotations

import torch
from torch import nn

from model.backbone import FrozenBatchNorm3d
from model.network import AIA
from model.train.config import OptimConfig, OptimizerKind, ScheduleConfig


def freeze_norms(model: nn.Module) -> int:
    """Stop the frozen-BN scale/shift from training (the reference recipe); returns count."""
    frozen = 0
    for module in model.modules():
        if isinstance(module, FrozenBatchNorm3d):
            for p in module.parameters():
                p.requires_grad_(False)
                frozen += p.numel()
    return frozen


def param_groups(model: AIA, cfg: OptimConfig, lr: float) -> list[dict[str, object]]:
    """Four groups: {IA, rest} x {weights, biases}. IA x ia_lr_mult; biases x bias_lr_mult
    with their own weight decay."""
    ia_ids = {id(p) for p in model.head.ia.parameters()} if model.head.ia is not None else set()
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_bias = name.endswith(".bias")
        groups.setdefault((id(p) in ia_ids, is_bias), []).append(p)
    out = []
    for (is_ia, is_bias), params in sorted(groups.items()):
        mult = (cfg.ia_lr_mult if is_ia else 1.0) * (cfg.bias_lr_mult if is_bias else 1.0)
        out.append({
            "params": params,
            "lr": lr * mult,
            "weight_decay": cfg.bias_weight_decay if is_bias else cfg.weight_decay,
            "name": f"{'ia' if is_ia else 'net'}_{'bias' if is_bias else 'weight'}",
        })
    return out


def build_optimizer(model: AIA, cfg: OptimConfig, batch_size: int) -> torch.optim.Optimizer:
    lr = cfg.lr * batch_size / cfg.lr_batch  # linear scaling from the reference's 16 clips
    groups = param_groups(model, cfg, lr)
    if cfg.name is OptimizerKind.ADAMW:
        return torch.optim.AdamW(groups, lr=lr, betas=(cfg.momentum, 0.999))
    return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum)


def lr_factor(step: int, cfg: ScheduleConfig) -> float:
    """Linear warm-up from warmup_factor to 1, then x gamma at each milestone passed."""
    decay = cfg.gamma ** sum(1 for m in cfg.milestones if step >= m)
    if step < cfg.warmup_steps:
        alpha = step / cfg.warmup_steps
        return decay * (cfg.warmup_factor * (1 - alpha) + alpha)
    return decay


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: ScheduleConfig
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg))
