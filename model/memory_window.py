"""The memory window: the one rule for which seconds a key frame's head sees from memory.

A key frame at second t sees the whole seconds `t - before .. t + after`, second 0 left out
(the clip's own persons join the memory inside graph 2), at most `per_second` person features
from each. The AMU bank, the joint and frozen memories of training, validation, the artifact's
input spec and the service all ask this module; none writes the rule again. No torch here:
the service imports it with the ONNX runtime.

Three quantities that are easy to confuse, with one name each:
- `span`: seconds the window covers, second 0 included (before + 1 + after); the head's
  table of second positions has this many rows.
- slot seconds: per memory slot, its second's offset from the key frame ([M] int64; graph 2's
  input port is called `memory_seconds` in the exported contract).
- stored seconds: how many seconds of a session the store holds (`SessionRecord`), a count
  of the store's, not a property of the window.

Two layouts of the memory input, both masked:
- fixed (`slot_seconds`): `slots` slots, neighbour j owning slots j*per_second ..
  (j+1)*per_second - 1, missing ones masked. Training reads this way (bank, joint, frozen).
- compact (`gather` + `pad`): only the seconds present, in window order, then padded across
  key frames. Validation and the service read this way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MemoryWindow:
    before: int  # whole seconds before the key frame
    after: int  # whole seconds after it
    per_second: int  # memory slots (person features) per second

    def __post_init__(self) -> None:
        if self.before < 0 or self.after < 0 or self.per_second < 1:
            raise ValueError(f"{self}: before, after >= 0 and per_second >= 1")

    @property
    def span(self) -> int:
        """Seconds the window covers, second 0 included."""
        return self.before + 1 + self.after

    def neighbours(self, lookahead: int | None = None) -> tuple[int, ...]:
        """Offsets of the seconds memory may hold, 0 excluded. lookahead None: the whole
        future side (offline); else at most `lookahead` seconds ahead (streaming)."""
        after = self.after if lookahead is None else max(0, min(lookahead, self.after))
        return tuple(o for o in range(-self.before, after + 1) if o != 0)

    @property
    def slots(self) -> int:
        """Width M of the memory input when every neighbour second is full."""
        return len(self.neighbours()) * self.per_second

    def slot_seconds(self) -> np.ndarray:
        """The fixed layout: offset of each slot [M] int64, `per_second` slots a neighbour."""
        return np.repeat(np.asarray(self.neighbours(), np.int64), self.per_second)

    def seconds_around(self, second: int, lookahead: int | None = None) -> list[int]:
        """The absolute seconds a key frame at `second` may read."""
        return [second + o for o in self.neighbours(lookahead)]

    def gather(self, features: Mapping[int, np.ndarray], second: int,
               dim: int) -> tuple[np.ndarray, np.ndarray]:
        """The compact layout for one key frame: {second: [n,D]} -> features float32 [m,D] and
        slot seconds int64 [m], the first `per_second` of each present neighbour in order."""
        rows, offsets = [], []
        for offset in self.neighbours():
            found = features.get(second + offset)
            if found is None:
                continue
            found = np.asarray(found[: self.per_second], np.float32)
            rows.append(found)
            offsets += [offset] * len(found)
        stacked = np.concatenate(rows) if rows else np.zeros((0, dim), np.float32)
        return stacked, np.asarray(offsets, np.int64)


def pad(windows: Sequence[tuple[np.ndarray, np.ndarray]],
        dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compact windows ([m_b,D], [m_b]) -> memory float32 [B,M,D], mask bool [B,M], slot
    seconds int64 [B,M], M the widest; padding is masked with offset 0."""
    width = max((len(offsets) for _, offsets in windows), default=0)
    memory = np.zeros((len(windows), width, dim), np.float32)
    mask = np.zeros((len(windows), width), bool)
    seconds = np.zeros((len(windows), width), np.int64)
    for b, (feats, offsets) in enumerate(windows):
        m = len(offsets)
        memory[b, :m], mask[b, :m], seconds[b, :m] = feats, True, offsets
    return memory, mask, seconds
