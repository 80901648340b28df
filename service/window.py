"""The service's side of the memory window: which seconds a key frame reads, how complete
its memory was, and graph 2's padded inputs. The window rule itself is
`model.memory_window.MemoryWindow` (the same object validation reads); whole videos (past and
future seconds) and session clips (past seconds, plus a lookahead) both go through it.
Seconds are whole seconds: a key frame at time t belongs to second floor(t).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from model.memory_window import MemoryWindow, pad
from service.schemas import MemoryStatus

_EPS = 1e-6  # a key frame at 2.9999999 s is second 3: float noise from start_s + t


def second_of(t: float) -> int:
    return math.floor(t + _EPS)


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


def memory_inputs(window: MemoryWindow, sources: Sequence[Mapping[int, np.ndarray]],
                  seconds: Sequence[int], dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per key frame (its {second: [n,D]} source and its second) the window's compact memory,
    padded to one width: memory float32 [B,M,D], mask bool [B,M], slot seconds int64 [B,M]."""
    return pad([window.gather(source, s, dim) for source, s in zip(sources, seconds,
                                                                    strict=True)], dim)


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
