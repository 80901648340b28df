"""Memory windows for graph 2, built exactly as offline validation builds them.

`model.memory_window.memory_for` is the one place that turns "person features per second"
into the head's memory input; whole videos (past and future seconds) and session clips (past
seconds, plus a lookahead) both go through it here, then get padded across key frames.
Seconds are whole seconds: a key frame at time t belongs to second floor(t).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch

from model.config import ModelConfig
from model.memory_window import SecondFeatures, memory_for
from service.schemas import MemoryStatus

_EPS = 1e-6  # a key frame at 2.9999999 s is second 3: float noise from start_s + t


def second_of(t: float) -> int:
    return math.floor(t + _EPS)


def memory_source(features: Mapping[int, np.ndarray]) -> dict[int, SecondFeatures]:
    """{second: float32 [n,D]} -> what memory_for reads (boxes and objects are not used)."""
    return {s: SecondFeatures(torch.from_numpy(np.ascontiguousarray(f, np.float32)),
                              torch.zeros(len(f), 4), torch.zeros(0, f.shape[1]))
            for s, f in features.items()}


def window_seconds(cfg: ModelConfig, second: int, lookahead_s: int | None) -> list[int]:
    """Neighbour seconds of `second` the head may see; lookahead None: the whole future
    window (offline), else at most `lookahead_s` seconds ahead (streaming)."""
    after = cfg.ia.memory_after if lookahead_s is None else min(lookahead_s, cfg.ia.memory_after)
    return [second + o for o in range(-cfg.ia.memory_before, after + 1) if o != 0]


def status_of(expected: Iterable[int], present: Iterable[int]) -> MemoryStatus:
    """warm: every second that could exist is there; cold: none is; partial otherwise."""
    want = set(expected)
    have = want & set(present)
    if not have:
        return MemoryStatus.cold
    return MemoryStatus.warm if have == want else MemoryStatus.partial


def overall_status(statuses: Sequence[MemoryStatus], degraded: bool) -> MemoryStatus:
    """The least memory any key frame had (cold < partial < warm); degraded wins."""
    if degraded:
        return MemoryStatus.degraded
    order = (MemoryStatus.cold, MemoryStatus.partial, MemoryStatus.warm)
    return min(statuses, key=order.index, default=MemoryStatus.cold)


def memory_inputs(cfg: ModelConfig, sources: Sequence[Mapping[int, SecondFeatures]],
                  seconds: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per key frame (its source and second) memory_for's window, padded to one width:
    memory float32 [B,M,D], mask bool [B,M], seconds int64 [B,M]."""
    windows = [memory_for(cfg, source, s) for source, s in zip(sources, seconds, strict=True)]
    width = max((w[0].shape[1] for w in windows), default=0)
    b, d = len(windows), cfg.feature_dim
    memory = np.zeros((b, width, d), np.float32)
    mask = np.zeros((b, width), bool)
    offsets = np.zeros((b, width), np.int64)
    for i, (feats, valid, secs) in enumerate(windows):
        m = feats.shape[1]
        memory[i, :m] = feats[0].numpy()
        mask[i, :m] = valid[0].numpy()
        offsets[i, :m] = secs[0].numpy()
    return memory, mask, offsets


def pad_objects(objects: Sequence[np.ndarray], rows: Sequence[int],
                dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Object features [o,D] of key frames `rows` -> [B,O,D] + mask [B,O] (best first)."""
    width = max((len(objects[i]) for i in rows), default=0)
    padded = np.zeros((len(rows), width, dim), np.float32)
    mask = np.zeros((len(rows), width), bool)
    for b, i in enumerate(rows):
        padded[b, : len(objects[i])] = objects[i]
        mask[b, : len(objects[i])] = True
    return padded, mask
