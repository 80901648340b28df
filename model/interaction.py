"""Interaction blocks (P, O, M) and the three aggregation structures of the AIA paper.

Shapes: N persons in the batch, G context groups (clips), S slots per group, C = dim_inner,
D = feature width. A block's key/value input is projected once per clip ([G,S,C]) and shared
by every person of that clip; only the attention itself is per person.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from model.config import Block, IAConfig, Structure

INIT_STD = 0.01  # the reference initialises IA projections with N(0, 0.01)
DENSE_INIT = -5 * math.log(10)  # softmax mix logits start at -11.51 (0 for the last input)


class Padding(NamedTuple):
    """The reference's zero-padded slots (masks off), in P groups of identical slots: feats
    [P,C] the reduced feature of a padded slot of each group, log_count [N,P] how many slots
    each person's group holds (-inf: none), positions [P] their memory second (M only).
    Identical slots share one softmax term, weighted by their count."""

    feats: torch.Tensor
    log_count: torch.Tensor
    positions: torch.Tensor | None = None


class Context(NamedTuple):
    """Key/value input of one block type.

    feats [G,S,C] reduced slot features; mask [N,S] slots each person may attend to; index [N]
    group of each person; positions [G,S] memory second index (M only); padding: the
    reference's padded slots besides them, or None. `shared` means G == 1 and every person
    reads the same slots (P blocks): no gather needed.
    """

    feats: torch.Tensor
    mask: torch.Tensor
    index: torch.Tensor
    positions: torch.Tensor | None
    shared: bool
    padding: Padding | None = None


def _linear(d_in: int, d_out: int, std: float = INIT_STD) -> nn.Linear:
    layer = nn.Linear(d_in, d_out)
    nn.init.normal_(layer.weight, std=std)
    nn.init.zeros_(layer.bias)
    return layer


class InteractionBlock(nn.Module):
    """Attention -> LayerNorm (no affine) -> ReLU -> zero-init projection -> dropout -> residual."""

    def __init__(
        self, dim_in: int, dim_out: int, dim_inner: int, dropout: float, positions: int = 0,
        positions_after_projection: bool = False,
    ) -> None:
        super().__init__()
        self.after = positions_after_projection
        self.scale = dim_inner**-0.5
        self.query = _linear(dim_in, dim_inner)
        self.key = _linear(dim_inner, dim_inner)
        self.value = _linear(dim_inner, dim_inner)
        self.norm = nn.LayerNorm(dim_inner, elementwise_affine=False)
        self.out = nn.Linear(dim_inner, dim_out)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.dropout = nn.Dropout(dropout)
        self.shortcut: nn.Module = nn.Identity() if dim_in == dim_out else _linear(dim_in, dim_out)
        self.pos_key: nn.Parameter | None = None
        self.pos_value: nn.Parameter | None = None
        if positions > 0:  # M blocks: a learned vector per memory second
            self.pos_key = nn.Parameter(torch.zeros(positions, dim_inner))
            self.pos_value = nn.Parameter(torch.zeros(positions, dim_inner))

    def keys_values(self, feats: torch.Tensor, positions: torch.Tensor | None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected keys and values of slot features [...,C], with the memory second's
        position vectors added before or after the projection."""
        if self.pos_key is None or self.pos_value is None or positions is None:
            return self.key(feats), self.value(feats)
        pos_k, pos_v = self.pos_key[positions], self.pos_value[positions]
        if self.after:
            return self.key(feats) + pos_k, self.value(feats) + pos_v
        return self.key(feats + pos_k), self.value(feats + pos_v)

    def forward(self, x: torch.Tensor, ctx: Context) -> torch.Tensor:
        """x [N,dim_in] -> [N,dim_out]."""
        k, v = self.keys_values(ctx.feats, ctx.positions)  # [G,S,C], once per clip
        q = self.query(x)  # [N,C]
        if ctx.shared:
            scores = q @ k[0].transpose(0, 1)  # [N,S]
        else:
            # batched matmul, not einsum: ONNX Runtime's Einsum dies on N = 0 persons
            scores = (k[ctx.index] @ q.unsqueeze(-1)).squeeze(-1)  # [N,S,C]@[N,C,1] -> [N,S]
        scores = (scores * self.scale).masked_fill(~ctx.mask, torch.finfo(scores.dtype).min)
        groups = 0
        if ctx.padding is not None:  # the reference's padded slots
            pad_k, pad_v = self.keys_values(ctx.padding.feats, ctx.padding.positions)  # [P,C]
            groups = pad_k.shape[0]
            pad = (q @ pad_k.transpose(0, 1)) * self.scale + ctx.padding.log_count  # [N,P]
            scores = torch.cat([scores, pad], dim=1)  # [N,S+P]
        attn = F.softmax(scores, dim=1)
        if groups:
            attn, attn_pad = attn[:, :-groups], attn[:, -groups:]
        attn = attn * ctx.mask  # an all-masked row attends to nothing
        if ctx.shared:
            mixed = attn @ v[0]  # [N,C]
        else:
            mixed = (attn.unsqueeze(1) @ v[ctx.index]).squeeze(1)  # [N,1,S]@[N,S,C] -> [N,C]
        if groups:
            mixed = mixed + attn_pad @ pad_v  # [N,P]@[P,C]
            has_slots = torch.ones_like(mixed[:, :1])
        else:
            # a count, not any(): ONNX's ReduceMax over an empty axis is not False
            has_slots = (ctx.mask.sum(dim=1, keepdim=True) > 0).to(x.dtype)  # [N,1]
        update = self.dropout(self.out(F.relu(self.norm(mixed))))
        # no slot to attend to (no objects, empty memory): the block is its shortcut
        return self.shortcut(x) + update * has_slots


def _block_widths(cfg: IAConfig, dim_feature: int) -> list[int]:
    """Output width of each block: the last block of the chain (per branch if parallel) -> D."""
    n = len(cfg.blocks)
    if cfg.structure is Structure.PARALLEL:
        last = {kind: i for i, kind in enumerate(cfg.blocks)}
        return [dim_feature if last[k] == i else cfg.dim_inner for i, k in enumerate(cfg.blocks)]
    return [dim_feature if i == n - 1 else cfg.dim_inner for i in range(n)]


class InteractionAggregation(nn.Module):
    """Reduces person/object/memory features to C and runs the block structure -> [N,D]."""

    def __init__(self, cfg: IAConfig, dim_feature: int) -> None:
        super().__init__()
        c = cfg.dim_inner
        self.structure = cfg.structure
        self.kinds = tuple(cfg.blocks)
        self.keys_from_input = cfg.person_keys_from_input
        self.query_reduce = _linear(dim_feature, c)
        self.person_reduce = _linear(dim_feature, c) if cfg.uses(Block.PERSON) else None
        self.object_reduce = _linear(dim_feature, c) if cfg.uses(Block.OBJECT) else None
        self.memory_reduce = _linear(dim_feature, c) if cfg.uses(Block.MEMORY) else None
        self.reduce_dropout = nn.Dropout(cfg.dropout)
        widths = _block_widths(cfg, dim_feature)
        self.blocks = nn.ModuleList(
            InteractionBlock(c, w, c, cfg.dropout,
                             cfg.window.span if kind is Block.MEMORY else 0,
                             cfg.positions_after_projection)
            for kind, w in zip(cfg.blocks, widths, strict=True)
        )
        self.dense_mix = nn.ParameterList()
        if cfg.structure is Structure.DENSE:
            for i in range(2, len(cfg.blocks)):
                logits = torch.full((i, c), DENSE_INIT)
                logits[i - 1] = 0.0
                self.dense_mix.append(nn.Parameter(logits))

    def reduce(self, layer: nn.Linear | None, x: torch.Tensor) -> torch.Tensor:
        assert layer is not None
        return self.reduce_dropout(layer(x))

    def context(self, kind: Block, contexts: dict[str, Context], query: torch.Tensor,
                first: bool) -> Context:
        """A block's context; with person_keys_from_input, a P block that does not start its
        chain attends over its own input of every person of the clip (the reference)."""
        ctx = contexts[kind.value]
        if kind is Block.PERSON and self.keys_from_input and not first:
            return ctx._replace(feats=query.unsqueeze(0))  # [1,N,C]
        return ctx

    def forward(self, person: torch.Tensor, contexts: dict[str, Context]) -> torch.Tensor:
        """person [N,D] pre-IA features, contexts by block kind ("P","O","M") -> [N,D]."""
        query = self.reduce(self.query_reduce, person)  # [N,C]
        if self.structure is Structure.PARALLEL:
            total = torch.zeros_like(person)
            for kind in dict.fromkeys(self.kinds):  # one branch per kind, in first-use order
                h, first = query, True
                for block, block_kind in zip(self.blocks, self.kinds, strict=True):
                    if block_kind == kind:
                        h = block(h, self.context(kind, contexts, h, first))
                        first = False
                total = total + h
            return total
        outputs: list[torch.Tensor] = []
        for i, (block, kind) in enumerate(zip(self.blocks, self.kinds, strict=True)):
            if self.structure is Structure.DENSE and i >= 2:
                weights = F.softmax(self.dense_mix[i - 2], dim=0)  # [i,C] per-channel mix
                query = (torch.stack(outputs, dim=0) * weights.unsqueeze(1)).sum(dim=0)
            query = block(query, self.context(kind, contexts, query, i == 0))
            outputs.append(query)
        return query


def per_person(ctx: Context) -> Context:
    """The reference's layout: every person gets its own copy of its clip's slots, so the
    key/value projections run once per person. Same result; used to check and to cost ours."""
    if ctx.shared:
        return ctx
    index = torch.arange(ctx.index.shape[0], device=ctx.index.device)
    positions = None if ctx.positions is None else ctx.positions[ctx.index]
    return ctx._replace(feats=ctx.feats[ctx.index], index=index, positions=positions,
                        shared=False)
