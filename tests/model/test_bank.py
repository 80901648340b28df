"""The AMU feature bank against Algorithm 1 of the paper."""

from __future__ import annotations

import math

import pytest
import torch

from model.bank import BankWrite, FeatureBank, penalty


def bank(**kw) -> FeatureBank:
    args = {"dim": 4, "persons_per_second": 2, "before": 2, "after": 1} | kw
    return FeatureBank(**args)


@pytest.mark.parametrize(
    ("err", "tag", "expected"),
    [
        (2.0, 4.0, 0.5),
        (4.0, 2.0, 0.5),
        (3.0, 3.0, 1.0),
        (1.0, 10.0, 0.1),
        (math.inf, 2.0, 0.0),
        (2.0, 0.0, 0.0),
    ],
)
def test_penalty_is_eq2(err: float, tag: float, expected: float) -> None:
    assert penalty(err, tag) == pytest.approx(expected)


def test_window_layout_excludes_the_current_second() -> None:
    b = bank()
    assert b.slots == 3 * 2
    assert b.offsets.tolist() == [-2, -2, -1, -1, 1, 1]
    window = b.read(["v"], [10])
    assert window.features.shape == (1, 6, 4)
    assert not window.mask.any()  # Algorithm 1 line 1: nothing written yet
    assert torch.equal(window.features, torch.zeros(1, 6, 4))
    assert window.seconds.tolist() == [[-2, -2, -1, -1, 1, 1]]


def test_read_scales_each_entry_by_its_loss_tag() -> None:
    b = bank()
    feats = torch.arange(1.0, 13.0).view(3, 4)
    b.merge(
        [
            BankWrite("v", 9, feats[:2], loss=2.0),
            BankWrite("v", 11, feats[2:], loss=8.0),
            BankWrite("v", 10, feats[:1], loss=4.0),
        ]
    )
    b.set_loss(4.0)
    w = b.read(["v"], [10])
    # second 9 (offset -1): tag 2, err 4 -> 0.5; second 11 (offset +1): tag 8 -> 0.5
    torch.testing.assert_close(w.features[0, 2:4], feats[:2] * 0.5)
    torch.testing.assert_close(w.features[0, 4], feats[2] * 0.5)
    assert w.mask[0].tolist() == [False, False, True, True, True, False]
    assert torch.equal(w.features[0, 5], torch.zeros(4))  # missing: masked zeros
    # the write at second 10 is the current clip: never read back into its own window
    assert not (w.features[0] == feats[0]).all(dim=1).any()
    # explicit err overrides the stored one
    torch.testing.assert_close(b.read(["v"], [10], err=2.0).features[0, 2:4], feats[:2])


def test_err_starts_infinite_so_first_reads_are_zero() -> None:
    b = bank()
    b.merge([BankWrite("v", 1, torch.ones(1, 4), loss=1.0)])
    assert torch.equal(b.read(["v"], [2]).features, torch.zeros(1, 6, 4))


def test_step_writes_take_first_k_persons_per_clip_detached() -> None:
    b = bank()
    feats = torch.randn(5, 4, requires_grad=True)
    writes = b.writes_for_step(["a", "b"], [3, 7], feats * 2, torch.tensor([0, 0, 0, 1, 1]), 0.7)
    assert [(w.video, w.second, w.features.shape[0], w.loss) for w in writes] == [
        ("a", 3, 2, 0.7),
        ("b", 7, 2, 0.7),
    ]
    assert not writes[0].features.requires_grad
    torch.testing.assert_close(writes[1].features, (feats[3:] * 2).detach())
    b.merge(writes)
    b.set_loss(0.7)
    assert not b.read(["a"], [4]).features.requires_grad


def test_gathered_writes_from_other_ranks_merge_the_same_way() -> None:
    ranks = [bank(), bank()]
    local = [
        [BankWrite("a", 1, torch.ones(2, 4), 1.0)],
        [BankWrite("b", 1, torch.zeros(1, 4), 1.0)],
    ]
    gathered = [w for rank in local for w in rank]  # what all_gather_object gives every rank
    for r in ranks:
        r.merge(gathered)
        r.set_loss(1.0)
    a, b = (r.read(["a", "b"], [2, 2]) for r in ranks)
    assert torch.equal(a.features, b.features)
    assert torch.equal(a.mask, b.mask)


def test_bounded_size_evicts_least_recently_written() -> None:
    b = bank(capacity=2)
    for s in range(3):
        b.merge([BankWrite("v", s, torch.full((1, 4), float(s)), 1.0)])
    assert len(b) == 2
    b.set_loss(1.0)
    w = b.read(["v"], [2])
    assert w.mask[0].tolist() == [False, False, True, False, False, False]  # second 0 evicted


def test_state_dict_round_trip() -> None:
    b = bank()
    b.merge([BankWrite("v", 4, torch.randn(2, 4), 3.0)])
    b.set_loss(2.5)
    fresh = bank()
    fresh.load_state_dict(b.state_dict())
    assert fresh.err == 2.5
    torch.testing.assert_close(fresh.read(["v"], [5]).features, b.read(["v"], [5]).features)
    with pytest.raises(ValueError, match="saved for"):
        bank(dim=8).load_state_dict(b.state_dict())


def test_bad_writes_and_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="expected"):
        bank().merge([BankWrite("v", 1, torch.ones(4), 1.0)])
    with pytest.raises(ValueError, match="persons_per_second"):
        FeatureBank(dim=4, persons_per_second=0, before=1, after=1)


def test_half_precision_storage_reads_back_float32() -> None:
    b = bank(dtype=torch.float16)
    b.merge([BankWrite("v", 1, torch.full((1, 4), 0.5), 1.0)])
    b.set_loss(1.0)
    w = b.read(["v"], [2])
    assert w.features.dtype == torch.float32
    assert w.features[0, 2].tolist() == [0.5] * 4
