"""Graph 2: the IA head and classifier, a pure tensor function of features and memory."""

from __future__ import annotations

import torch
from torch import nn

from model.config import Block, ClassifierConfig, IAConfig, ModelConfig
from model.interaction import Context, InteractionAggregation, Padding
from model.slots import pad_per_clip, rank_in_clip


class Classifier(nn.Module):
    """Linear D->h1, ReLU, ..., Linear ->hk, ReLU, dropout, Linear hk->A."""

    def __init__(self, cfg: ClassifierConfig, dim_feature: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = dim_feature
        for hidden in cfg.hidden:
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            width = hidden
        self.mlp = nn.Sequential(*layers)
        self.dropout = nn.Dropout(cfg.dropout)
        self.logits = nn.Linear(width, cfg.num_classes)
        nn.init.normal_(self.logits.weight, std=0.01)
        nn.init.zeros_(self.logits.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N,D] -> logits [N,A]."""
        return self.logits(self.dropout(self.mlp(x)))


class AIAHead(nn.Module):
    """Person features + objects + memory -> action logits.

    The clip's own persons (detached, first `persons_per_second` of each clip) are added to
    the memory at second 0 inside the graph, as the reference's memory window does (unless
    `ia.memory_current` is off); the `memory` input holds the neighbouring seconds only.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg: IAConfig = cfg.ia
        self.ia = InteractionAggregation(cfg.ia, cfg.feature_dim) if cfg.ia.blocks else None
        self.classifier = Classifier(cfg.classifier, cfg.feature_dim)

    def forward(
        self,
        person_feats: torch.Tensor,
        person_batch: torch.Tensor,
        object_feats: torch.Tensor,
        object_mask: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor,
        memory_seconds: torch.Tensor,
    ) -> torch.Tensor:
        """
        person_feats [N,D], person_batch [N] int64 clip of each person,
        object_feats [B,O,D] sorted by score + object_mask [B,O] bool,
        memory [B,M,D] + memory_mask [B,M] bool + memory_seconds [B,M] int64 offsets from the
        key frame (neighbour seconds; slots outside the window are ignored) -> logits [N,A].
        """
        if self.ia is None:
            return self.classifier(person_feats)
        contexts = self.contexts(person_feats, person_batch, object_feats, object_mask,
                                 memory, memory_mask, memory_seconds)
        return self.classifier(person_feats + self.ia(person_feats, contexts))

    def contexts(
        self,
        person_feats: torch.Tensor,
        person_batch: torch.Tensor,
        object_feats: torch.Tensor,
        object_mask: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor,
        memory_seconds: torch.Tensor,
    ) -> dict[str, Context]:
        assert self.ia is not None
        out: dict[str, Context] = {}
        if self.cfg.uses(Block.PERSON):
            out["P"] = self.person_context(person_feats, person_batch)
        if self.cfg.uses(Block.OBJECT):
            slot = torch.arange(object_feats.shape[1], device=object_feats.device)
            mask = object_mask & (slot < self.cfg.max_objects).unsqueeze(0)  # [B,O]
            feats = self.ia.reduce(self.ia.object_reduce, object_feats)  # [B,O,C]
            out["O"] = self.group_context(feats, mask, person_batch, None)
            if not self.cfg.use_masks:  # reference: zero objects up to max_objects
                assert self.ia.object_reduce is not None
                count = mask.sum(dim=1, keepdim=True)  # [B,1]
                out["O"] = self.padded(out["O"], self.cfg.max_objects - count, person_batch,
                                       self.ia.object_reduce.bias.unsqueeze(0), None)
        if self.cfg.uses(Block.MEMORY):
            out["M"] = self.memory_context(person_feats, person_batch, memory, memory_mask,
                                           memory_seconds, object_feats.shape[0])
        return out

    def person_context(self, person_feats: torch.Tensor, person_batch: torch.Tensor) -> Context:
        assert self.ia is not None
        keys = self.ia.reduce(self.ia.person_reduce, person_feats)  # [N,C]
        same = person_batch.unsqueeze(0) == person_batch.unsqueeze(1)  # [N,N]
        kept = rank_in_clip(person_batch) < self.cfg.max_persons  # [N] first slots of a clip
        eye = torch.eye(person_feats.shape[0], dtype=torch.bool, device=person_feats.device)
        mask = same & (kept.unsqueeze(0) | eye)  # the target always sees itself
        ctx = Context(keys.unsqueeze(0), mask, torch.zeros_like(person_batch), None, True)
        if self.cfg.use_masks:
            return ctx
        # reference: the clip's person keys are zero-padded to max_persons after reduction
        pads = (self.cfg.max_persons - mask.sum(dim=1, keepdim=True)).clamp(min=0)  # [N,1]
        return ctx._replace(padding=Padding(keys.new_zeros(1, keys.shape[1]),
                                            torch.log(pads.to(keys.dtype))))

    def memory_context(
        self,
        person_feats: torch.Tensor,
        person_batch: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor,
        memory_seconds: torch.Tensor,
        num_clips: int,
    ) -> Context:
        assert self.ia is not None
        k = self.cfg.persons_per_second
        # second 0 of the input is ignored: the clip's own persons stand there (or, with
        # memory_current off, nobody does)
        feats, seconds, mask = memory, memory_seconds, memory_mask & (memory_seconds != 0)
        if self.cfg.memory_current:
            # memory features carry no gradient, the current clip's included
            current, current_mask = pad_per_clip(person_feats.detach(), person_batch,
                                                 num_clips, k)
            feats = torch.cat([memory, current], dim=1)  # [B,M+k,D]
            seconds = torch.cat([memory_seconds,
                                 torch.zeros_like(current_mask, dtype=torch.long)], dim=1)
            mask = torch.cat([mask, current_mask], dim=1)  # [B,M+k]
        in_window = (seconds >= -self.cfg.memory_before) & (seconds <= self.cfg.memory_after)
        mask = mask & in_window
        positions = (seconds + self.cfg.memory_before).clamp(0, self.cfg.window.span - 1)
        reduced = self.ia.reduce(self.ia.memory_reduce, feats)  # [B,M+k,C], once per clip
        ctx = self.group_context(reduced, mask, person_batch, positions)
        if self.cfg.use_masks:
            return ctx
        # reference: every second of the window holds persons_per_second slots, zero
        # features where nobody is: per second, the count of those
        assert self.ia.memory_reduce is not None
        seconds_range = torch.arange(self.cfg.window.span, device=feats.device)
        per_second = (positions.unsqueeze(-1) == seconds_range) & mask.unsqueeze(-1)
        count = per_second.sum(dim=1)  # [B,W] valid slots per window second
        bias = self.ia.memory_reduce.bias.unsqueeze(0).expand(self.cfg.window.span, -1)
        return self.padded(ctx, k - count, person_batch, bias, seconds_range)

    def padded(self, ctx: Context, pads: torch.Tensor, person_batch: torch.Tensor,
               pad_in: torch.Tensor, pad_positions: torch.Tensor | None) -> Context:
        """Add the reference's zero-padded slots: pads [B,P] of each pad group per clip,
        pad_in [P,C] = the reduction of a zero feature (its bias; dropout as for real slots)."""
        assert self.ia is not None
        count = pads.clamp(min=0).to(pad_in.dtype)[person_batch]  # [N,P]
        return ctx._replace(padding=Padding(self.ia.reduce_dropout(pad_in), torch.log(count),
                                            pad_positions))

    def group_context(
        self,
        feats: torch.Tensor,
        mask: torch.Tensor,
        person_batch: torch.Tensor,
        positions: torch.Tensor | None,
    ) -> Context:
        """feats [B,S,C] + mask [B,S] shared by the clip's persons -> per-person Context."""
        return Context(feats, mask[person_batch], person_batch, positions, False)
