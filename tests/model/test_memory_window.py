"""The memory-window rule, owned by model.memory_window and asked by every reader."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.bank import FeatureBank
from model.config import preset
from model.memory_window import MemoryWindow, pad


def test_neighbours_leave_out_second_zero_and_respect_lookahead() -> None:
    window = MemoryWindow(before=2, after=3, per_second=2)
    assert window.span == 6
    assert window.neighbours() == (-2, -1, 1, 2, 3)
    assert window.neighbours(lookahead=0) == (-2, -1)
    assert window.neighbours(lookahead=1) == (-2, -1, 1)
    assert window.neighbours(lookahead=99) == window.neighbours()
    assert window.slots == 10
    assert window.slot_seconds().tolist() == [-2, -2, -1, -1, 1, 1, 2, 2, 3, 3]
    assert window.seconds_around(10, lookahead=1) == [8, 9, 11]


def test_r50_window_is_the_papers() -> None:
    window = preset("r50_4x16").ia.window
    assert (window.span, window.slots, len(window.neighbours())) == (61, 300, 60)


@pytest.mark.parametrize("bad", [(-1, 0, 1), (0, -1, 1), (1, 1, 0)])
def test_bad_window_is_refused(bad: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError, match="per_second"):
        MemoryWindow(*bad)


def test_gather_takes_present_neighbours_in_order_capped_per_second() -> None:
    window = MemoryWindow(before=1, after=1, per_second=2)
    feats = {4: np.full((3, 2), 4.0), 5: np.full((1, 2), 5.0), 6: np.full((1, 2), 6.0),
             9: np.full((1, 2), 9.0)}
    memory, seconds = window.gather(feats, 5, dim=2)
    assert memory[:, 0].tolist() == [4.0, 4.0, 6.0]  # second 0 (5) left out, 4 capped at 2
    assert seconds.tolist() == [-1, -1, 1]
    empty, none = window.gather({}, 5, dim=2)
    assert empty.shape == (0, 2)
    assert none.shape == (0,)


def test_pad_masks_the_padding() -> None:
    window = MemoryWindow(before=1, after=1, per_second=2)
    a = window.gather({0: np.ones((2, 3))}, 1, dim=3)
    b = window.gather({}, 1, dim=3)
    memory, mask, seconds = pad([a, b], dim=3)
    assert memory.shape == (2, 2, 3)
    assert memory.dtype == np.float32
    assert mask.tolist() == [[True, True], [False, False]]
    assert seconds.tolist() == [[-1, -1], [0, 0]]


def test_bank_reads_in_the_windows_fixed_layout() -> None:
    window = MemoryWindow(before=1, after=2, per_second=2)
    bank = FeatureBank(dim=3, persons_per_second=2, before=1, after=2)
    assert bank.window == window
    bank.merge([])
    read = bank.read(["v"], [5])
    assert read.features.shape == (1, window.slots, 3)
    assert torch.equal(read.seconds[0], torch.from_numpy(window.slot_seconds()))
