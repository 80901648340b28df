"""Decoding key-frame windows from whole videos (PyAV).

A window is `frames` frames at `fps` centred on a key frame at an integer second (time 0 is
the first frame): frame i is taken at `second + (i - frames // 2) / fps`. Each of those times
gets the decoded frame whose presentation time is nearest (ties go to the earlier frame), so
any source frame rate resamples to the spec's; times before the first or after the last frame
get that edge frame. Frames are resized (short side `short_side`, long side at most
`max_long_side`, aspect kept) by swscale while converting to RGB.

Random access seeks to the key frame before the window and decodes forward (`read_window`);
a whole video in order streams through one decoder (`iter_windows`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from model.config import InputConfig

# A key second may lie this far past the last decoded frame (the last second of a video whose
# length is not a whole number of seconds); further out the video is shorter than its labels.
END_TOLERANCE_S = 0.5
_TIE_S = 1e-6  # nearest-frame ties (within float noise) go to the earlier frame


class VideoError(RuntimeError):
    """A video that cannot be opened or decoded; the message starts with its path."""


@dataclass(frozen=True)
class WindowSpec:
    """The decoding part of `InputConfig`: what a cached window depends on."""

    frames: int
    fps: float
    short_side: int
    max_long_side: int

    @classmethod
    def from_input(cls, cfg: InputConfig) -> WindowSpec:
        return cls(cfg.frames, cfg.fps, cfg.short_side, cfg.max_long_side)

    def key(self) -> str:
        """Short stable hash naming this spec in cache paths."""
        text = json.dumps([1, self.frames, self.fps, self.short_side, self.max_long_side])
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    def times(self, second: float) -> np.ndarray:
        """[frames] sample times of the window centred on `second` (key frame at frames//2)."""
        return second + (np.arange(self.frames) - self.frames // 2) / self.fps

    def resized(self, width: int, height: int) -> tuple[int, int, float]:
        """(width, height, scale) after resizing a `width` x `height` frame."""
        scale = min(self.short_side / min(width, height), self.max_long_side / max(width, height))
        return max(1, round(width * scale)), max(1, round(height * scale)), scale


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int
    height: int
    origin: float  # presentation time of the first frame (seconds); video time 0
    fingerprint: str  # size and mtime: a changed file invalidates cached windows


@dataclass
class _Buffered:
    time: float  # seconds since the first frame
    frame: av.VideoFrame
    rgb: np.ndarray | None = field(default=None)


def _fail(path: Path, what: str, err: BaseException | None = None) -> VideoError:
    detail = f": {type(err).__name__}: {err}" if err is not None else ""
    return VideoError(f"{path}: {what}{detail}")


def _fingerprint(path: Path) -> str:
    stat = os.stat(path)
    return f"{stat.st_size}-{stat.st_mtime_ns}"


def probe(path: str | Path) -> VideoInfo:
    """Open the video and decode its first frame (size, time origin); VideoError if unreadable."""
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise _fail(path, "no video stream")
            stream = container.streams.video[0]
            first = next(container.decode(stream), None)
            if first is None:
                raise _fail(path, "no decodable frame")
            if first.time is None:
                raise _fail(path, "frames carry no timestamps")
            return VideoInfo(path, first.width, first.height, first.time, _fingerprint(path))
    except (av.FFmpegError, OSError) as err:
        raise _fail(path, "cannot open video", err) from err


def nearest_indices(frame_times: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """[F] ascending frame times, [T] target times -> [T] index of the nearest frame.

    Ties go to the earlier frame; targets outside the span clamp to the first / last frame.
    """
    if len(frame_times) == 1:
        return np.zeros(len(targets), dtype=np.int64)
    right = np.searchsorted(frame_times, targets, side="left").clip(1, len(frame_times) - 1)
    left = right - 1
    later = (frame_times[right] - targets) < (targets - frame_times[left]) - _TIE_S
    return np.where(later, right, left)


def to_rgb(frame: av.VideoFrame, width: int, height: int,
           reformatter: VideoReformatter | None = None) -> np.ndarray:
    """Decoded frame -> uint8 [height,width,3] RGB (swscale, bilinear).

    Pass one `reformatter` for many frames: it keeps its scaler set up, about 4x faster
    than a fresh one per frame. One thread: DataLoader workers are the parallelism.
    """
    reformatter = reformatter if reformatter is not None else VideoReformatter()
    out = reformatter.reformat(frame, width=width, height=height, format="rgb24", threads=1)
    return out.to_ndarray()


def _assemble(buffer: list[_Buffered], targets: np.ndarray, size: tuple[int, int],
              reformatter: VideoReformatter) -> np.ndarray:
    """Pick the nearest buffered frame for every target time -> uint8 [T,h,w,3]."""
    width, height = size
    picks = nearest_indices(np.array([b.time for b in buffer]), targets)
    out = np.empty((len(targets), height, width, 3), dtype=np.uint8)
    for i, pick in enumerate(picks):
        item = buffer[pick]
        if item.rgb is None:
            item.rgb = to_rgb(item.frame, width, height, reformatter)
        out[i] = item.rgb
    return out


def _check_end(info: VideoInfo, second: float, last_time: float) -> None:
    if second > last_time + END_TOLERANCE_S:
        raise _fail(info.path, f"key frame at {second} s is past the last frame "
                               f"({last_time:.2f} s); the video is shorter than its labels")


def _decode_span(
    container: av.container.InputContainer, info: VideoInfo, start: float, stop: float,
    seek: bool,
) -> list[_Buffered]:
    """Frames from the last one at or before `start` to the first one at or after `stop`."""
    stream = container.streams.video[0]
    if seek:
        assert stream.time_base is not None
        container.seek(math.floor((info.origin + start) / stream.time_base), stream=stream,
                       backward=True)
    kept: list[_Buffered] = []
    for frame in container.decode(stream):
        if frame.time is None:
            raise _fail(info.path, "a frame carries no timestamp")
        item = _Buffered(frame.time - info.origin, frame)
        if item.time <= start:
            kept = [item]  # only the latest frame at or before the window start matters
        else:
            kept.append(item)
        if item.time >= stop:
            break
    return kept


def read_window(path: str | Path, second: float, spec: WindowSpec,
                info: VideoInfo | None = None) -> np.ndarray:
    """The window centred on `second` -> uint8 [frames,h,w,3] (size from `spec.resized`)."""
    info = info if info is not None else probe(path)
    targets = spec.times(second)
    width, height, _ = spec.resized(info.width, info.height)
    try:
        with av.open(str(info.path)) as container:
            seek = targets[0] > 0
            kept = _decode_span(container, info, targets[0], targets[-1], seek)
            if seek and (not kept or kept[0].time > targets[0]):
                # the seek landed past the window start (an imprecise index): decode from 0
                container.seek(0)
                kept = _decode_span(container, info, targets[0], targets[-1], seek=False)
            if not kept:
                raise _fail(info.path, f"no frames decoded around {second} s")
            _check_end(info, second, kept[-1].time)
            return _assemble(kept, targets, (width, height), VideoReformatter())
    except (av.FFmpegError, OSError) as err:
        raise _fail(info.path, f"cannot decode the window at {second} s", err) from err


def _window_ready(spec: WindowSpec, second: int, last_time: float) -> bool:
    return last_time >= spec.times(second)[-1]


def _prune(buffer: list[_Buffered], start: float) -> list[_Buffered]:
    """Drop frames before the last one at or before `start` (no later window needs them)."""
    keep_from = 0
    for i, item in enumerate(buffer):
        if item.time <= start:
            keep_from = i
        else:
            break
    return buffer[keep_from:]


def iter_windows(
    path: str | Path, spec: WindowSpec, seconds: Iterable[int] | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Every key frame of a whole video in one decoding pass: (second, uint8 [T,h,w,3]).

    `seconds` None means every integer second from 0 to the end of the video. Frames stream
    through a buffer one window long, so memory stays bounded on feature-length videos.
    """
    info = probe(path)
    size = spec.resized(info.width, info.height)[:2]
    auto = seconds is None
    reformatter = VideoReformatter()
    pending: deque[int] = deque([0] if auto else sorted(set(seconds or ())))
    buffer: list[_Buffered] = []
    try:
        with av.open(str(info.path)) as container:
            for frame in container.decode(container.streams.video[0]):
                if frame.time is None:
                    raise _fail(info.path, "a frame carries no timestamp")
                buffer.append(_Buffered(frame.time - info.origin, frame))
                while pending and _window_ready(spec, pending[0], buffer[-1].time):
                    yield from _emit(pending, buffer, spec, size, auto, reformatter)
                    buffer = _prune(buffer, spec.times(pending[0])[0]) if pending else []
                if not pending:
                    break  # the rest of the video holds no wanted key frame
    except (av.FFmpegError, OSError) as err:
        raise _fail(info.path, "cannot decode the video", err) from err
    last = buffer[-1].time if buffer else -math.inf
    # unlabelled seconds need a frame within half a frame interval; labelled ones get slack
    slack = (last - buffer[-2].time) / 2 if auto and len(buffer) > 1 else END_TOLERANCE_S
    while pending and pending[0] <= last + slack:
        yield from _emit(pending, buffer, spec, size, auto, reformatter)
    if pending and not auto:
        _check_end(info, pending[0], last)


def _emit(pending: deque[int], buffer: list[_Buffered], spec: WindowSpec, size: tuple[int, int],
          auto: bool, reformatter: VideoReformatter) -> Iterator[tuple[int, np.ndarray]]:
    second = pending.popleft()
    if auto:
        pending.append(second + 1)
    yield second, _assemble(buffer, spec.times(second), size, reformatter)
