"""A video decoded only as far as a request needs, keeping only the frames its key frames'
windows still need.

The engine walks the key frames in time order, a batch at a time: `take` the next key
frames (the client's, or one every 1 / rate s while the video lasts), their pictures for
the detector, their windows for graph 1; then `release` them. A grid frame (the grid
k / spec.fps of `service.decode`) is kept only while a planned, unreleased key frame's window
picks it, so peak memory is set by the window and the batch, not by the video's length (a
590 s upload once held all 14,750 of its frames, 2 GB). Windows equal
`clip_windows(decode_video(...))` exactly: the same resampler, the same nearest-frame rule.

Blocking PyAV work: every method runs in the caller's thread (the engine uses worker
threads) and holds the stream's lock, so `close` waits for a decode still running in another
thread (a request cancelled by its deadline) instead of closing a running generator.
"""

from __future__ import annotations

import functools
import math
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from exporters.artifact import InputSpec
from model.data.video import nearest_indices
from service.decode import (
    Limits,
    Resampler,
    VideoMeta,
    detector_size,
    grid_index,
    pad_frames,
    source_frames,
)
from service.errors import Undecodable

_KEYFRAME_EPS = 1e-9  # as service.decode.keyframe_times: no key frame at the very end


T = TypeVar("T")


def _locked(method: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(method)
    def run(self: FrameStream, *args: Any) -> T:
        with self._lock:
            return method(self, *args)
    return run


@dataclass(frozen=True)
class _Planned:
    """A key frame and the grid points its window picks (on a grid without an end)."""

    time: float
    first: int
    last: int


class FrameStream:
    def __init__(self, path: Path, meta: VideoMeta, spec: InputSpec, limits: Limits,
                 times: Sequence[float] | None, rate: float | None = None,
                 detector_pictures: bool = False) -> None:
        """`times`: the key frames, ascending; None: one every 1 / `rate` s while the video
        lasts. `detector_pictures`: keep key frames at `rate` near native size too."""
        if times is None and not rate:
            raise ValueError("key frames need times or a rate")
        width, height, self.scale = spec.resized(meta.width, meta.height)
        self.size, self.spec, self.fps = (width, height), spec, spec.fps
        self._offsets = (np.arange(spec.frames) - spec.frames // 2) / spec.fps  # [F] s
        keep = ((detector_size(meta.width, meta.height), rate)
                if detector_pictures and rate else None)
        self._resampler = Resampler(spec.fps, self.size, self._on_grid, keep)
        self._source = source_frames(path, limits)
        self._frames: dict[int, np.ndarray] = {}  # grid index -> uint8 [h,w,3], still needed
        self._last: tuple[int, np.ndarray] | None = None  # windows past the end repeat it
        self._plan = list(times) if times is not None else None
        self._rate = rate
        self._planned = 0  # key frames whose windows are planned
        self._peek: _Planned | None = None
        self._pending: deque[_Planned] = deque()  # planned, not yet released
        self._taken = 0  # key frames handed out by `take`
        self.ended = False
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ what the engine asks

    @property
    def duration_s(self) -> float:
        """Seconds of grid decoded so far: the video's, once `ended`."""
        return self._resampler.count / self.fps

    @_locked
    def take(self, n: int) -> np.ndarray:
        """float64 [<=n] the next key frames; with a rate, only those the video reaches
        (t = k / rate while t < its duration, and always t = 0)."""
        if self._plan is not None:
            out = self._plan[self._taken:self._taken + n]
        else:
            out = []
            while len(out) < n and self._reaches(self._taken + len(out)):
                out.append((self._taken + len(out)) / self._rate)  # type: ignore[operator]
        self._taken += len(out)
        return np.asarray(out, np.float64)

    @_locked
    def detector_pictures(self, times: np.ndarray) -> list[np.ndarray]:
        """uint8 [H',W',3] per key frame: the picture the detector sees (near native size
        when kept, else the action model's frame)."""
        wanted = [int(i) for i in grid_index(times, self.fps)]
        self._advance(lambda: self._resampler.count > max(wanted, default=-1))
        pictures = []
        for i in wanted:
            i = min(i, self._resampler.count - 1)
            kept = self._resampler.kept.pop(i, None)
            pictures.append(kept if kept is not None else self._frame(i))
        return pictures

    @_locked
    def windows(self, times: np.ndarray) -> np.ndarray:
        """uint8 [K, spec.frames, H, W, 3] windows centred on ascending `times`, padded to
        min_side; frames past either end repeat the edge frame, as training does."""
        targets = np.asarray(times, np.float64)[:, None] + self._offsets[None, :]  # [K,F]
        beyond = math.ceil(float(targets.max()) * self.fps) + 1  # one grid point past
        self._advance(lambda: self._resampler.count > beyond)
        grid = np.arange(self._resampler.count) / self.fps
        picks = nearest_indices(grid, targets.reshape(-1))  # [K*F]
        frames = np.stack([self._frame(int(i)) for i in picks])  # [K*F,h,w,3]
        padded = pad_frames(frames, self.spec.min_side)
        return padded.reshape(*targets.shape, *padded.shape[1:])  # [K,F,H,W,3]

    @_locked
    def release(self, through: float) -> None:
        """Key frames at or before `through` are done: forget the frames only they needed."""
        while self._pending and self._pending[0].time <= through:
            self._pending.popleft()
        keep_from = min((p.first for p in self._pending), default=None)
        if keep_from is None:
            keep_from = self._peek.first if self._peek is not None else self._resampler.count
        for index in [i for i in self._frames if i < keep_from]:
            del self._frames[index]
        for index in [i for i in self._resampler.kept if i < keep_from]:
            del self._resampler.kept[index]

    @_locked
    def reach(self, t: float) -> None:
        """Decode on (keeping nothing new) until the grid passes `t` or the video ends."""
        self._advance(lambda: (self._resampler.count - 1) / self.fps >= t)

    @_locked
    def close(self) -> None:
        self._source.close()  # type: ignore[attr-defined]

    def __enter__(self) -> FrameStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ decoding

    def _advance(self, done: object) -> None:
        assert callable(done)
        while not self.ended and not done():
            item = next(self._source, None)
            if item is None:
                self._resampler.finish()
                self.ended = True
                if self._resampler.count == 0:
                    raise Undecodable("the video stream holds no decodable frame")
            else:
                self._resampler.push(*item)

    def _reaches(self, k: int) -> bool:
        """Key frame k exists: k = 0, or k / rate < duration (less float noise)."""
        assert self._rate is not None

        def known() -> bool:
            count = self._resampler.count
            return count > 0 and (k == 0 or k < math.ceil(count / self.fps * self._rate
                                                          - _KEYFRAME_EPS))

        self._advance(known)
        return known()

    def _on_grid(self, index: int, rgb: np.ndarray) -> None:
        """Each grid point as the resampler makes it: kept if a planned window picks it."""
        while (planned := self._next_planned()) is not None and planned.first <= index:
            self._pending.append(planned)
            self._peek = None
        if any(p.first <= index <= p.last for p in self._pending):
            self._frames[index] = rgb
        self._last = (index, rgb)

    def _next_planned(self) -> _Planned | None:
        if self._peek is None:
            if self._plan is not None:
                if self._planned >= len(self._plan):
                    return None
                t = float(self._plan[self._planned])
            else:
                t = self._planned / self._rate  # type: ignore[operator]
            self._planned += 1
            self._peek = self._window_of(t)
        return self._peek

    def _window_of(self, t: float) -> _Planned:
        targets = t + self._offsets  # [F]
        lo = max(0, math.floor(float(targets.min()) * self.fps) - 1)
        hi = math.ceil(float(targets.max()) * self.fps) + 2
        picks = nearest_indices(np.arange(lo, hi) / self.fps, targets) + lo
        return _Planned(t, int(picks.min()), int(picks.max()))

    def _frame(self, index: int) -> np.ndarray:
        if index in self._frames:
            return self._frames[index]
        if self._last is not None and self._last[0] == index:
            return self._last[1]
        raise AssertionError(f"grid frame {index} was not kept: key frames must be asked "
                             "for in time order")
