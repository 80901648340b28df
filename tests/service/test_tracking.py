"""The tracker on synthetic tracks: crossing persons, gaps within and beyond max age, empty
frames, appearance re-identification, and its byte state."""

from __future__ import annotations

import numpy as np
import pytest

from service.tracking import Tracker, TrackerConfig, TrackerState, TrackerStateError


def _box(cx: float, cy: float, w: float = 0.08, h: float = 0.3) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def _run(tracker: Tracker, frames: list[tuple[float, list[list[float]], np.ndarray | None]],
         through_bytes: bool = True) -> list[list[int]]:
    state, out = TrackerState(), []
    for timestamp, boxes, features in frames:
        state, ids = tracker.update(state, timestamp, np.asarray(boxes).reshape(-1, 4), features)
        if through_bytes:  # as a session does: the state lives in Redis between key frames
            state = TrackerState.from_bytes(state.to_bytes())
        out.append(ids)
    return out


def test_two_persons_crossing_keep_their_ids() -> None:
    # A walks right, B walks left at another depth; they pass each other at t=5, and each
    # moves more than its own width per second, so only the motion model can follow them
    frames = [(float(t), [_box(0.1 + 0.1 * t, 0.45), _box(0.9 - 0.1 * t, 0.55)], None)
              for t in range(10)]
    ids = _run(Tracker(), frames)
    assert all(pair == ids[0] for pair in ids), ids
    assert len(set(ids[0])) == 2


def test_order_of_boxes_does_not_matter() -> None:
    frames = [(float(t), [_box(0.2, 0.5), _box(0.6, 0.5)][:: 1 if t % 2 else -1], None)
              for t in range(6)]
    ids = _run(Tracker(), frames)
    a, b = ids[0][1], ids[0][0]  # t=0 is reversed
    assert all(row == ([a, b] if t % 2 else [b, a]) for t, row in enumerate(ids)), ids


def test_gap_within_max_age_keeps_id_and_beyond_gets_a_new_one() -> None:
    tracker = Tracker(TrackerConfig(max_age_s=3.0))
    seen = [(0.0, [_box(0.3, 0.5)], None), (1.0, [_box(0.3, 0.5)], None)]
    within = _run(tracker, [*seen, (2.0, [], None), (3.0, [], None), (4.0, [_box(0.31, 0.5)],
                                                                        None)])
    assert within == [[0], [0], [], [], [0]]
    beyond = _run(tracker, [*seen, (5.5, [_box(0.3, 0.5)], None)])
    assert beyond == [[0], [0], [1]]


def test_empty_frames_and_an_empty_state() -> None:
    tracker = Tracker()
    state, ids = tracker.update(TrackerState(), 0.0, np.zeros((0, 4)), None)
    assert ids == []
    assert state.tracks == ()
    assert state.next_id == 0
    state, ids = tracker.update(state, 1.0, np.asarray([_box(0.5, 0.5)]), None)
    assert ids == [0]
    state, ids = tracker.update(state, 2.0, np.zeros((0, 4)), None)
    assert ids == []
    assert [t.track_id for t in state.tracks] == [0]


def test_appearance_reidentifies_after_a_jump_and_keeps_lookalike_boxes_apart() -> None:
    red, blue = np.array([1.0, 0.0, 0.0, 0.1]), np.array([0.0, 1.0, 0.0, 0.1])
    frames = [
        (0.0, [_box(0.2, 0.5), _box(0.7, 0.5)], np.stack([red, blue])),
        # both reappear 1 s later at each other's places: motion says swap, looks say no
        (1.0, [_box(0.7, 0.5), _box(0.2, 0.5)], np.stack([red, blue])),
        # red alone, far away from where it was: appearance alone re-identifies it
        (2.0, [_box(0.95, 0.2)], red[None]),
    ]
    ids = _run(Tracker(), frames)
    assert ids == [[0, 1], [0, 1], [0]]
    without = _run(Tracker(), [(t, b, None) for t, b, _ in frames])
    assert without[1] == [1, 0]  # IoU only: the swap the features prevented


def test_state_bytes_round_trip_and_refuse_garbage() -> None:
    tracker = Tracker()
    state, _ = tracker.update(TrackerState(), 0.5, np.asarray([_box(0.2, 0.5), _box(0.6, 0.5)]),
                              np.random.default_rng(0).normal(size=(2, 16)))
    data = state.to_bytes()
    assert TrackerState.from_bytes(data) == state
    assert b"pickle" not in data
    assert data.startswith(b"AIATRK1\n")
    with pytest.raises(TrackerStateError):
        TrackerState.from_bytes(data[:-3])
    with pytest.raises(TrackerStateError):
        TrackerState.from_bytes(b"\x80\x04junk")


def test_features_that_come_and_go_or_change_size() -> None:
    rng = np.random.default_rng(3)
    wide = rng.normal(size=(1, 16))
    frames = [(0.0, [_box(0.3, 0.5)], rng.normal(size=(1, 8))),
              (1.0, [_box(0.31, 0.5)], None),
              (2.0, [_box(0.32, 0.5)], wide),  # another model's features: 16-D, not 8
              (3.0, [_box(0.33, 0.5)], wide + 0.01 * rng.normal(size=(1, 16)))]
    assert _run(Tracker(), frames) == [[0], [0], [0], [0]]
