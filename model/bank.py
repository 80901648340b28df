"""Asynchronous Memory Update feature bank (Algorithm 1 of the AIA paper).

The pool holds, per (video, second), up to K pre-IA person features and the loss of the step
that wrote them. A READ returns the window around a key frame (neighbour seconds only; the
clip's own persons enter the head inside graph 2), each stored feature scaled by
w = min(err/tag, tag/err) where err is the latest training loss. Seconds never written are
masked zeros. WRITEs happen after each step; writes gathered from other ranks go through the
same `merge`, so every rank holds the same pool. Size is bounded: the least recently written
entries are evicted first.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from model.memory_window import MemoryWindow


@dataclass(frozen=True)
class BankWrite:
    """One (video, second) entry: features [k,D] (k <= K), tagged with the writer's loss."""

    video: str
    second: int
    features: torch.Tensor
    loss: float


class MemoryInput(NamedTuple):
    """Graph 2's memory input, in the window's fixed layout (model.memory_window)."""

    features: torch.Tensor  # [B,M,D], M = window.slots, zeros where missing
    mask: torch.Tensor  # [B,M] bool
    seconds: torch.Tensor  # [B,M] int64 offset of each slot from the key frame


def penalty(err: float, tag: float) -> float:
    """Eq. (2): min(err/tag, tag/err); 1 when equal, 0 for an unset (0 or inf) side."""
    if err == tag:
        return 1.0
    if not (0.0 < err < math.inf and 0.0 < tag < math.inf):
        return 0.0
    return min(err / tag, tag / err)


class FeatureBank:
    def __init__(
        self,
        dim: int,
        persons_per_second: int,
        before: int,
        after: int,
        capacity: int = 1_000_000,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if dim < 1 or persons_per_second < 1 or before < 0 or after < 0 or capacity < 1:
            raise ValueError(
                f"FeatureBank(dim={dim}, persons_per_second={persons_per_second}, "
                f"before={before}, after={after}, capacity={capacity}): "
                "dim, persons_per_second, capacity >= 1 and before, after >= 0"
            )
        self.dim, self.k = dim, persons_per_second
        self.before, self.after = before, after
        self.capacity, self.dtype = capacity, dtype
        self.err = math.inf  # Algorithm 1, line 2
        self._pool: OrderedDict[tuple[str, int], tuple[torch.Tensor, float]] = OrderedDict()
        self.window = MemoryWindow(before, after, persons_per_second)
        self.offsets = torch.from_numpy(self.window.slot_seconds())  # [M]

    def __len__(self) -> int:
        return len(self._pool)

    @property
    def slots(self) -> int:
        return self.offsets.numel()

    # -- WRITE ------------------------------------------------------------------------------

    def writes_for_step(
        self,
        videos: Sequence[str],
        seconds: Sequence[int],
        person_features: torch.Tensor,
        person_batch: torch.Tensor,
        loss: float,
    ) -> list[BankWrite]:
        """The step's writes: the first K persons of each clip [N,D] by clip index [N]."""
        feats = person_features.detach().to("cpu", self.dtype)
        batch = person_batch.to("cpu")
        writes = []
        for b, (video, second) in enumerate(zip(videos, seconds, strict=True)):
            mine = feats[batch == b][: self.k]
            writes.append(BankWrite(video, int(second), mine.clone(), float(loss)))
        return writes

    def merge(self, writes: Iterable[BankWrite]) -> None:
        """Store writes (this rank's and those gathered from others); newest wins."""
        for w in writes:
            if w.features.dim() != 2 or w.features.shape[1] != self.dim:
                raise ValueError(
                    f"bank write {w.video}@{w.second}: features {tuple(w.features.shape)}, "
                    f"expected [k<={self.k}, {self.dim}]"
                )
            key = (w.video, w.second)
            self._pool[key] = (w.features[: self.k].to("cpu", self.dtype), float(w.loss))
            self._pool.move_to_end(key)
            while len(self._pool) > self.capacity:
                self._pool.popitem(last=False)

    def set_loss(self, loss: float) -> None:
        """Algorithm 1, line 15: err <- the current step's loss."""
        self.err = float(loss)

    # -- READ -------------------------------------------------------------------------------

    def read(
        self,
        videos: Sequence[str],
        seconds: Sequence[int],
        err: float | None = None,
        device: torch.device | str = "cpu",
    ) -> MemoryInput:
        """Windows around each (video, second) -> MemoryInput [B,M,D]; no gradient."""
        err = self.err if err is None else err
        b, m = len(videos), self.slots
        features = torch.zeros(b, m, self.dim)
        mask = torch.zeros(b, m, dtype=torch.bool)
        for i, (video, second) in enumerate(zip(videos, seconds, strict=True)):
            for j, offset in enumerate(self.window.neighbours()):
                entry = self._pool.get((video, int(second) + offset))
                if entry is None:
                    continue
                stored, tag = entry
                start = j * self.k
                features[i, start : start + len(stored)] = stored.float() * penalty(err, tag)
                mask[i, start : start + len(stored)] = True
        return MemoryInput(features.to(device), mask.to(device),
                            self.offsets.expand(b, m).clone().to(device))

    # -- state ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": {"dim": self.dim, "persons_per_second": self.k, "before": self.before,
                       "after": self.after, "capacity": self.capacity},
            "err": self.err,
            "entries": [(v, s, f, loss) for (v, s), (f, loss) in self._pool.items()],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        expected = {"dim": self.dim, "persons_per_second": self.k, "before": self.before,
                    "after": self.after, "capacity": self.capacity}
        if state["config"] != expected:
            raise ValueError(f"bank state was saved for {state['config']}, this bank is {expected}")
        self._pool.clear()
        self.merge(BankWrite(v, s, f, loss) for v, s, f, loss in state["entries"])
        self.err = float(state["err"])
