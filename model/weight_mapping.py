"""Placing someone else's tensors into this project's network: one rule for every importer
(AlphAction, pytorchvideo, PySlowFast).

A mapping names, for each of our state-dict keys, the source key it comes from. `place` fills
our tensors and reports, by name, what went wrong on either side: our tensors left unset,
source tensors left unplaced, and pairs whose shapes do not fit. Shapes fit when they agree
once size-1 dimensions are dropped (a 1x1x1 convolution is a Linear layer; a [61,1,C,1,1,1]
position table is [61,C]); anything else is refused, never reshaped into place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from torch import Tensor


def fits(ours: Tensor, theirs: Tensor) -> bool:
    """Same shape once size-1 dimensions are dropped."""
    return [d for d in theirs.shape if d != 1] == [d for d in ours.shape if d != 1]


@dataclass
class Placement:
    tensors: dict[str, Tensor] = field(default_factory=dict)  # ours, filled
    unset: list[str] = field(default_factory=list)  # "our key <- source key"
    unplaced: list[str] = field(default_factory=list)  # source keys no one took
    misshapen: list[str] = field(default_factory=list)  # "source [shape] -> ours [shape]"

    def problems(self) -> str | None:
        """None when every tensor found its place; else what did not, by name."""
        if not (self.unset or self.unplaced or self.misshapen):
            return None
        return (f"{len(self.unplaced)} of its tensors not placed {self.unplaced[:6]}, "
                f"{len(self.unset)} of ours unset {self.unset[:6]}, "
                f"{len(self.misshapen)} misshapen {self.misshapen[:4]}")


def place(names: Mapping[str, str], ours: Mapping[str, Tensor], theirs: Mapping[str, Tensor],
          ignored: Callable[[str], bool] = lambda key: False) -> Placement:
    """Our tensors from theirs by `names` (our key -> their key); `ignored` source keys (step
    counters, a classifier left behind on purpose) are neither placed nor reported."""
    out = Placement()
    claimed: set[str] = set()  # placed, or reported as misshapen
    for key, mine in ours.items():
        source = names.get(key)
        if source is None or source not in theirs:
            out.unset.append(f"{key} <- {source}")
            continue
        claimed.add(source)
        value = theirs[source]
        if not fits(mine, value):
            out.misshapen.append(f"{source} {list(value.shape)} -> {key} {list(mine.shape)}")
            continue
        out.tensors[key] = value.reshape(mine.shape).to(mine.dtype).clone()
    out.unplaced = sorted(k for k in theirs if k not in claimed and not ignored(k))
    return out
