"""The session tracking step alone: continue from a stored state, never rewind, restart on an
unreadable state."""

from __future__ import annotations

import numpy as np

from service.session_tracks import track_clip
from service.tracking import TrackerState

BOXES = [np.array([[0.1, 0.1, 0.4, 0.9], [0.6, 0.1, 0.9, 0.9]], np.float32)] * 2
FEATURES = [np.eye(2, 8, dtype=np.float32)] * 2


def test_continues_from_the_stored_state_and_never_rewinds() -> None:
    first = track_clip(None, np.array([0.0, 1.0]), BOXES, FEATURES)
    assert first.person_ids == [[0, 1], [0, 1]]
    assert first.state is not None
    assert TrackerState.from_bytes(first.state).last_timestamp == 1.0
    # key frames given out of time order are tracked in time order
    second = track_clip(first.state, np.array([3.0, 2.0]), BOXES, FEATURES)
    assert second.person_ids == [[0, 1], [0, 1]]
    assert second.state is not None
    assert TrackerState.from_bytes(second.state).last_timestamp == 3.0
    late = track_clip(second.state, np.array([1.5, 4.0]), BOXES, FEATURES)
    assert late.person_ids == [None, None]
    assert late.state is None  # the stored state stays as it is


def test_unreadable_or_no_state_restarts_and_empty_clips_store_nothing() -> None:
    restarted = track_clip(b"not a tracker state", np.array([5.0]), BOXES[:1], FEATURES[:1])
    assert restarted.person_ids == [[0, 1]]
    assert restarted.state is not None
    empty = track_clip(None, np.zeros(0), [], [])
    assert (empty.person_ids, empty.state) == ([], None)
    no_persons = track_clip(None, np.array([0.0]), [np.zeros((0, 4), np.float32)],
                            [np.zeros((0, 8), np.float32)])
    assert no_persons.person_ids == [[]]
    assert no_persons.state is not None
