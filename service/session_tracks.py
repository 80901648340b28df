"""Person identities across the clips of a session: the tracker continues from the state the
store keeps with the session (read with the memory, committed with the clip), so consecutive
clips, on any replica, keep the same `person_id` for the same person.

Rules:
- A clip advances the tracker only when all its key frames are later than the state's last
  timestamp. A late clip (out of order, or overlapping what was tracked) never rewinds it:
  its persons get `person_id` null and the stored state is left as it is.
- No stored state (first clip, degraded store, or a state this version cannot read): the
  tracker starts empty, so ids restart at 0 within the clip. A degraded clip is not
  committed, so the session's state is unchanged and the next healthy clip continues it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.tracking import Tracker, TrackerState, TrackerStateError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipTracks:
    person_ids: list[list[int] | None]  # K x [n] track ids; None: this key frame untracked
    state: bytes | None  # the state to commit with the clip; None: keep the stored one


def load_state(stored: bytes | None) -> TrackerState:
    if stored is None:
        return TrackerState()
    try:
        return TrackerState.from_bytes(stored)
    except TrackerStateError as err:
        # another format (an older release) or damage: tracks restart rather than the clip fail
        log.warning("tracker state unreadable, tracks restart: %s", err)
        return TrackerState()


def track_clip(stored: bytes | None, times: np.ndarray, boxes: Sequence[np.ndarray],
               features: Sequence[np.ndarray], tracker: Tracker | None = None) -> ClipTracks:
    """times float64 [K] session seconds of the key frames; boxes K x [n,4] normalised;
    features K x [n,D] the persons' RoI features (appearance) -> ids and the new state."""
    state = load_state(stored)
    untracked: list[list[int] | None] = [None] * len(times)
    if not len(times):
        return ClipTracks(untracked, None)
    last = state.last_timestamp
    if last is not None and float(np.min(times)) <= last:
        return ClipTracks(untracked, None)
    tracker = tracker or Tracker()
    ids = untracked.copy()
    for k in np.argsort(times, kind="stable"):
        state, ids[k] = tracker.update(state, float(times[k]), boxes[k],
                                       features[k] if len(features[k]) else None)
    return ClipTracks(ids, state.to_bytes())
