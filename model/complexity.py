"""Parameter and multiply-accumulate counts per part of the network (for `aia info`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from model.config import Block, ModelConfig
from model.network import AIA, build_aia


@dataclass(frozen=True)
class ParamCounts:
    backbone: int
    ia: int
    classifier: int
    total: int


@dataclass(frozen=True)
class MacCounts:
    persons: int
    objects: int
    memory_slots: int
    features: int  # graph 1 for one clip: persons + objects pooled
    head: int  # graph 2
    head_reference: int  # the same head projecting memory/objects once per person


def count(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def param_counts(model: AIA) -> ParamCounts:
    return ParamCounts(
        backbone=count(model.features.backbone),
        ia=count(model.head.ia),
        classifier=count(model.head.classifier),
        total=count(model),
    )


def _macs(fn: object, *args: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter:
        fn(*args)  # type: ignore[operator]
    return counter.get_total_flops() // 2


def _reference_extra(cfg: ModelConfig, persons: int, objects: int, slots: int) -> int:
    """MACs the reference spends re-projecting each clip's objects/memory for every person."""
    c, d = cfg.ia.dim_inner, cfg.feature_dim
    extra = 0
    for kind, n_slots in ((Block.OBJECT, objects), (Block.MEMORY, slots)):
        if not cfg.ia.uses(kind):
            continue
        blocks = sum(1 for b in cfg.ia.blocks if b is kind)
        per_clip = n_slots * (d * c + blocks * 2 * c * c)  # reduce + key/value per block
        extra += (persons - 1) * per_clip
    return extra


def mac_counts(cfg: ModelConfig, persons: int, objects: int | None = None) -> MacCounts:
    """MACs for one clip at the preset's input size, counted on the meta device (no compute)."""
    objects = cfg.ia.max_objects if objects is None else objects
    slots = cfg.ia.window.slots  # neighbours; the head adds 'now'
    with torch.device("meta"):
        model = build_aia(cfg).eval()
    h, w = cfg.input.short_side, cfg.input.max_long_side
    meta = torch.device("meta")
    clip = torch.zeros(1, cfg.input.frames, h, w, 3, dtype=torch.uint8, device=meta)
    boxes = torch.zeros(persons + objects, 5, device=meta)
    d = cfg.feature_dim
    head_args = (
        torch.zeros(persons, d, device=meta),
        torch.zeros(persons, dtype=torch.long, device=meta),
        torch.zeros(1, objects, d, device=meta),
        torch.ones(1, objects, dtype=torch.bool, device=meta),
        torch.zeros(1, slots, d, device=meta),
        torch.ones(1, slots, dtype=torch.bool, device=meta),
        torch.zeros(1, slots, dtype=torch.long, device=meta),
    )
    head = _macs(model.head, *head_args)
    return MacCounts(
        persons=persons,
        objects=objects,
        memory_slots=slots + cfg.ia.persons_per_second,
        features=_macs(model.features, clip, boxes),
        head=head,
        head_reference=head + _reference_extra(cfg, persons, objects, slots
                                               + cfg.ia.persons_per_second),
    )
