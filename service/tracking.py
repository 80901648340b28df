"""Person identities across key frames: a pure tracker (no I/O) whose state is small bytes.

`Tracker.update(state, timestamp, boxes, features)` matches this key frame's person boxes to
the tracks in `state` and returns the new state and one person id per box. The state travels
(`to_bytes` / `from_bytes`: a JSON header plus raw float32 features, never pickle), so a
session keeps it in Redis beside its memory and any replica continues the same tracks.

Cost of pairing track t with box b (linear_sum_assignment on the cost matrix):
- motion: 0.5 (1 - IoU(predicted t, b)) + 0.5 min(centre distance / box height, 1); a track
  is predicted with its last velocity, so a walker that moves more than its width per key
  frame (no overlap at 1 Hz) is still followed;
- appearance (when both have features, e.g. the action model's person RoI features):
  cosine distance to the track's running mean feature.
Gating: a pair is allowed when the centres are within `max_center_distance` box heights, or
when the appearance distance is at most `reid_distance` (re-identification after a gap).
Unmatched boxes start tracks (every person gets an id at once); tracks unseen for more than
`max_age_s` are dropped.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.optimize import linear_sum_assignment

MAGIC = b"AIATRK1\n"
_HEADER_LEN = struct.Struct("<I")
_BLOCKED = 1e6  # cost of a pair the gate forbids


class TrackerStateError(ValueError):
    """Bytes that are not a tracker state (truncated, another format)."""


@dataclass(frozen=True)
class TrackerConfig:
    max_age_s: float = 3.0  # a track unseen this long is dropped (its id is never reused)
    max_center_distance: float = 1.0  # motion gate, in box heights (after prediction)
    appearance_weight: float = 1.0
    reid_distance: float = 0.05  # appearance alone may match a pair this close (cosine)
    max_appearance_distance: float = 0.6  # never match a pair further apart than this
    feature_momentum: float = 0.7  # running mean of a track's features
    velocity_momentum: float = 0.5


@dataclass(frozen=True)
class Track:
    track_id: int
    box: tuple[float, float, float, float]  # x1,y1,x2,y2 normalised, last seen
    velocity: tuple[float, float]  # of the box centre, normalised units per second
    last_seen: float  # timestamp, seconds
    hits: int
    feature: tuple[float, ...] | None = None  # L2-normalised running mean

    def predicted(self, timestamp: float) -> np.ndarray:
        dt = max(timestamp - self.last_seen, 0.0)
        dx, dy = self.velocity[0] * dt, self.velocity[1] * dt
        x1, y1, x2, y2 = self.box
        return np.array([x1 + dx, y1 + dy, x2 + dx, y2 + dy])


@dataclass(frozen=True)
class TrackerState:
    tracks: tuple[Track, ...] = ()
    next_id: int = 0
    last_timestamp: float | None = None

    def to_bytes(self) -> bytes:
        """MAGIC, uint32 header length, JSON header, float32 features [T_with_feature, D]."""
        with_features = [t for t in self.tracks if t.feature is not None]
        dims = {len(t.feature) for t in with_features if t.feature is not None}
        if len(dims) > 1:
            raise TrackerStateError(f"tracks carry features of sizes {sorted(dims)}")
        header = {
            "next_id": self.next_id, "last_timestamp": self.last_timestamp,
            "dim": dims.pop() if dims else 0,
            "tracks": [{"id": t.track_id, "box": list(t.box), "v": list(t.velocity),
                        "seen": t.last_seen, "hits": t.hits, "f": t.feature is not None}
                       for t in self.tracks],
        }
        text = json.dumps(header, separators=(",", ":")).encode()
        features = np.asarray([t.feature for t in with_features], np.float32)  # [T,D]
        return MAGIC + _HEADER_LEN.pack(len(text)) + text + features.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> TrackerState:
        if not data.startswith(MAGIC) or len(data) < len(MAGIC) + _HEADER_LEN.size:
            raise TrackerStateError("not a tracker state (bad magic)")
        start = len(MAGIC) + _HEADER_LEN.size
        (length,) = _HEADER_LEN.unpack_from(data, len(MAGIC))
        try:
            header = json.loads(data[start:start + length])
            dim, entries = int(header["dim"]), header["tracks"]
            count = sum(bool(e["f"]) for e in entries)
            raw = data[start + length:]
            if len(raw) != count * dim * 4:
                raise TrackerStateError(f"features: {len(raw)} bytes, expected {count * dim * 4}")
            features = iter(np.frombuffer(raw, np.float32).reshape(count, dim).tolist())
            tracks = tuple(Track(int(e["id"]), tuple(map(float, e["box"])),  # type: ignore[arg-type]
                                 tuple(map(float, e["v"])), float(e["seen"]),  # type: ignore[arg-type]
                                 int(e["hits"]), tuple(next(features)) if e["f"] else None)
                           for e in entries)
            last = header["last_timestamp"]
            return cls(tracks, int(header["next_id"]), None if last is None else float(last))
        except (ValueError, KeyError, TypeError) as err:
            raise TrackerStateError(f"corrupt tracker state: {err}") from None


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[T,4], [N,4] -> [T,N]."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0.0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def _normalised(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)


def _stored(feature: np.ndarray) -> tuple[float, ...]:
    """Normalised and rounded to float32, as the bytes keep it: a state equals its copy."""
    return tuple(_normalised(feature).astype(np.float32).tolist())


@dataclass(frozen=True)
class Tracker:
    config: TrackerConfig = field(default_factory=TrackerConfig)

    def cost(self, tracks: tuple[Track, ...], timestamp: float, boxes: np.ndarray,
             features: np.ndarray | None) -> np.ndarray:
        """[T,N] pairing cost, _BLOCKED where the gate forbids the pair."""
        cfg = self.config
        predicted = np.stack([t.predicted(timestamp) for t in tracks])  # [T,4]
        centre_t = (predicted[:, :2] + predicted[:, 2:]) / 2
        centre_b = (boxes[:, :2] + boxes[:, 2:]) / 2
        height = np.maximum(predicted[:, None, 3] - predicted[:, None, 1],
                            boxes[None, :, 3] - boxes[None, :, 1])  # [T,N]
        distance = np.linalg.norm(centre_t[:, None] - centre_b[None], axis=2) / np.maximum(
            height, 1e-6)
        cost = 0.5 * (1.0 - _iou(predicted, boxes)) + 0.5 * np.minimum(distance, 1.0)
        allowed = distance <= cfg.max_center_distance
        if features is not None:
            dim = features.shape[1]  # a track with other-sized features (model swap): none
            has = np.array([t.feature is not None and len(t.feature) == dim for t in tracks])
            if has.any():
                known = np.array([t.feature if h else np.zeros(dim)
                                  for t, h in zip(tracks, has, strict=True)])  # [T,D]
                appearance = 1.0 - _normalised(known) @ _normalised(features).T  # [T,N]
                appearance[~has] = 0.0
                cost = cost + cfg.appearance_weight * appearance
                allowed = (allowed | (has[:, None] & (appearance <= cfg.reid_distance))) & (
                    appearance <= cfg.max_appearance_distance)
        return np.where(allowed, cost, _BLOCKED)

    def update(self, state: TrackerState, timestamp: float, boxes: np.ndarray,
               features: np.ndarray | None = None) -> tuple[TrackerState, list[int]]:
        """boxes [n,4] normalised x1,y1,x2,y2; features [n,D] or None -> (state, ids [n])."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if features is not None:
            features = np.asarray(features, np.float64).reshape(len(boxes), -1)  # [n,D]
        alive = tuple(t for t in state.tracks
                      if timestamp - t.last_seen <= self.config.max_age_s)
        pairs: dict[int, int] = {}  # box -> track index
        if alive and len(boxes):
            cost = self.cost(alive, timestamp, boxes, features)
            rows, cols = linear_sum_assignment(cost)
            pairs = {int(c): int(r) for r, c in zip(rows, cols, strict=True)
                     if cost[r, c] < _BLOCKED}
        tracks = {t.track_id: t for t in alive}
        ids, next_id = [], state.next_id
        for b in range(len(boxes)):
            feature = None if features is None else features[b]
            if b in pairs:
                track = self._follow(alive[pairs[b]], timestamp, boxes[b], feature)
            else:
                track = Track(next_id, tuple(boxes[b].tolist()), (0.0, 0.0), timestamp, 1,
                              None if feature is None else _stored(feature))
                next_id += 1
            tracks[track.track_id] = track
            ids.append(track.track_id)
        ordered = tuple(sorted(tracks.values(), key=lambda t: t.track_id))
        return TrackerState(ordered, next_id, timestamp), ids

    def _follow(self, track: Track, timestamp: float, box: np.ndarray,
                feature: np.ndarray | None) -> Track:
        cfg = self.config
        dt = timestamp - track.last_seen
        velocity = track.velocity
        if dt > 0:
            old = np.asarray(track.box)
            step = ((box[:2] + box[2:]) - (old[:2] + old[2:])) / 2 / dt
            keep = cfg.velocity_momentum if track.hits > 1 else 0.0
            velocity = tuple((keep * np.asarray(track.velocity) + (1 - keep) * step).tolist())
        mean = track.feature
        if feature is not None:
            new = _normalised(feature)
            if mean is not None and len(mean) == len(new):
                new = _normalised(cfg.feature_momentum * np.asarray(mean)
                                  + (1 - cfg.feature_momentum) * new)
            mean = _stored(new)
        return replace(track, box=tuple(box.tolist()), velocity=velocity,  # type: ignore[arg-type]
                       last_seen=timestamp, hits=track.hits + 1, feature=mean)
