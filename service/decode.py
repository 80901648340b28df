"""Uploaded file -> probed metadata -> resampled, resized RGB frames -> key-frame windows.

Everything here is blocking PyAV work that runs in the caller's thread (the app calls it
through a thread pool). Limits are checked on the declared metadata before any frame is
decoded, then again on what the decoder actually yields (declared numbers can lie).

Frames follow the training decoder (model/data/video.py): time 0 is the first frame, each
output time gets the source frame with the nearest presentation time (ties to the earlier
one), and swscale resizes bilinearly while converting to RGB. Decoding resamples the whole
video once onto the grid k / spec.fps; a window centred on a key frame at a multiple of
1 / spec.fps then picks exactly the source frames `read_window` would pick.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from exporters.artifact import InputSpec
from model.data.video import nearest_indices, to_rgb
from service.errors import DeadlineExceeded, Undecodable, UnsupportedMedia, VideoLimit
from service.settings import Settings

DETECT_MAX_SIDE = 640  # detector key frames: native size up to this long side
_TIE_S = 1e-6  # same tie rule as model.data.video.nearest_indices
_GRID_EPS = 1e-9  # float noise when a frame time sits exactly on a grid point
_SNIFF_BYTES = 16
# FFmpeg demuxers that read a single still image (png_pipe, jpeg_pipe, ..., image2)
_IMAGE_FORMAT_SUFFIX = "_pipe"
_IMAGE_FORMATS = frozenset({"image2"})  # animated GIFs pass as videos
_NOT_IMAGE_PIPES = frozenset({"yuv4mpegpipe"})


@dataclass(frozen=True)
class Limits:
    max_upload_bytes: int
    max_duration_s: float
    max_width: int
    max_height: int
    max_frames: int
    decode_timeout_s: float

    @classmethod
    def from_settings(cls, s: Settings) -> Limits:
        return cls(s.max_upload_bytes, s.max_duration_s, s.max_width, s.max_height,
                   s.max_frames, s.decode_timeout_s)


@dataclass(frozen=True)
class VideoMeta:
    width: int
    height: int
    fps: float
    duration_s: float
    frames: int  # declared, or estimated from duration * fps when the container has no count
    codec: str
    container: str
    # an estimate is not held against AIA_MAX_FRAMES: a variable-rate file (2 frames 40 s
    # apart, declared at 1000 fps) is not 40,001 frames; decoding counts the real ones
    frames_estimated: bool = False


@dataclass(frozen=True)
class Decoded:
    meta: VideoMeta
    frames: np.ndarray  # uint8 [T,h,w,3] RGB on the grid k / spec.fps, padded to >= min_side
    times: np.ndarray  # float64 [T] presentation seconds from the first frame
    scale: float  # resized / original
    size: tuple[int, int]  # resized (w, h) before padding
    # grid index -> uint8 [H',W',3]: key frames for the detector at up to DETECT_MAX_SIDE,
    # when decoding was asked to keep them (a request without boxes)
    detect_frames: dict[int, np.ndarray] = field(default_factory=dict)


# frame and slice threads of the codec: the same frames, decoded on every core (PyAV's
# default, "SLICE", leaves most codecs on one; bench/decode_speed.py compares the two)
CODEC_THREADS = "AUTO"


def _looks_like_container(path: Path) -> bool:
    """Magic bytes of containers FFmpeg reads: a failed open then means corrupt, not foreign."""
    with open(path, "rb") as f:
        head = f.read(_SNIFF_BYTES)
    return (head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")
            or head.startswith((b"\x1a\x45\xdf\xa3", b"OggS", b"FLV", b"YUV4MPEG2",
                                b"\x00\x00\x01\xba", b"\x30\x26\xb2\x75"))
            or (head.startswith(b"RIFF") and head[8:11] == b"AVI"))


def _is_image(container: av.container.InputContainer) -> bool:
    name = container.format.name
    if name in _NOT_IMAGE_PIPES:
        return False
    return name in _IMAGE_FORMATS or name.endswith(_IMAGE_FORMAT_SUFFIX)


def _open_failure(path: Path, err: av.FFmpegError) -> Exception:
    if _looks_like_container(path):
        return Undecodable(f"the file looks like a video container but cannot be read "
                           f"({err.strerror or err}); it is probably truncated or corrupt, "
                           f"upload the complete file")
    return UnsupportedMedia("the file is not a video container FFmpeg can read; send MP4, "
                            "WebM, MKV, MOV or AVI with a video stream")


def _declared(container: av.container.InputContainer, stream: av.VideoStream
              ) -> tuple[float, float, int]:
    """(fps, duration seconds, frame count) as the container declares them (0 if unknown;
    the count estimated from duration x rate when the container has none)."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    else:
        duration = 0.0
    frames = stream.frames or (round(duration * fps) if fps > 0 else 0)
    return fps, duration, frames


def _check_limits(meta: VideoMeta, limits: Limits) -> None:
    if meta.width <= 0 or meta.height <= 0:
        raise Undecodable(f"the video stream declares no frame size ({meta.width}x"
                          f"{meta.height}); re-encode the video")
    if meta.width > limits.max_width or meta.height > limits.max_height:
        raise VideoLimit(f"frame size {meta.width}x{meta.height} exceeds the limit "
                         f"{limits.max_width}x{limits.max_height}; downscale the video")
    if meta.duration_s > limits.max_duration_s:
        raise VideoLimit(f"duration {meta.duration_s:.1f} s exceeds the limit "
                         f"{limits.max_duration_s:g} s; send shorter clips")
    if meta.frames > limits.max_frames and not meta.frames_estimated:
        raise VideoLimit(f"{meta.frames} frames exceed the limit {limits.max_frames}; "
                         f"send shorter clips or a lower frame rate")


def probe_video(path: Path, limits: Limits) -> VideoMeta:
    """Read the container header; 415 for non-videos, 422 for corrupt files and over-limits."""
    try:
        container = av.open(str(path))
    except av.FFmpegError as err:
        raise _open_failure(path, err) from err
    with container:
        if _is_image(container):
            raise UnsupportedMedia("the file is a still image; send a video, not an image")
        if not container.streams.video:
            what = "audio only" if container.streams.audio else "no video stream"
            raise UnsupportedMedia(f"the file has {what}; send a file with a video stream")
        stream = container.streams.video[0]
        fps, duration, frames = _declared(container, stream)
        meta = VideoMeta(stream.codec_context.width, stream.codec_context.height, fps,
                         duration, frames, stream.codec_context.name, container.format.name,
                         frames_estimated=not stream.frames)
    _check_limits(meta, limits)
    return meta


def grid_index(times: np.ndarray | float, fps: float) -> np.ndarray:
    """The decoded grid point (k / fps) nearest each time: where a key frame's picture is."""
    return np.rint(np.asarray(times, np.float64) * fps).astype(int)


def detector_size(width: int, height: int, max_side: int = DETECT_MAX_SIDE) -> tuple[int, int]:
    """The size key frames are kept at for the detector: native, long side at most max_side."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


GridSink = Callable[[int, np.ndarray], None]  # (grid index, uint8 [h,w,3]) as each is made


class Resampler:
    """Streams decoded frames onto the grid k / fps, converting only the frames picked, and
    hands each grid point to `sink` as soon as it is final (the caller keeps what it needs).

    With `keep` = (size, rate), the grid points of key frames at `rate` per second are also
    converted at `size` into `kept`: the detector then sees the video near its own
    resolution, not the action model's (a 1280x720 cartoon shrunk to 224x126 showed the
    person detector "persons" it does not see at 640x360)."""

    def __init__(self, fps: float, size: tuple[int, int], sink: GridSink,
                 keep: tuple[tuple[int, int], float] | None = None) -> None:
        self.fps, self.size, self.sink = fps, size, sink
        self.reformatter = VideoReformatter()
        self.count = 0  # grid points made so far
        self.prev: tuple[float, av.VideoFrame] | None = None
        self.prev_rgb: np.ndarray | None = None
        self.last_time = 0.0
        self.keep = keep
        self.kept: dict[int, np.ndarray] = {}

    def _rgb(self, frame: av.VideoFrame) -> np.ndarray:
        return to_rgb(frame, self.size[0], self.size[1], self.reformatter)

    def _append(self, rgb: np.ndarray, frame: av.VideoFrame) -> None:
        index = self.count
        self.count += 1
        self.sink(index, rgb)
        if self.keep is not None:
            (width, height), rate = self.keep
            k = round(index * rate / self.fps)  # the key frame nearest this grid point
            if int(grid_index(k / rate, self.fps)) == index:  # its picture is this one
                self.kept[index] = to_rgb(frame, width, height, self.reformatter)

    def push(self, t: float, frame: av.VideoFrame) -> None:
        """Grid points up to `t` pick `frame` or the previous one, whichever is nearer."""
        cur_rgb: np.ndarray | None = None
        while (target := self.count / self.fps) <= t + _GRID_EPS:
            later = self.prev is None or (t - target) < (target - self.prev[0]) - _TIE_S
            if later:
                cur_rgb = cur_rgb if cur_rgb is not None else self._rgb(frame)
                self._append(cur_rgb, frame)
            else:
                assert self.prev is not None
                if self.prev_rgb is None:
                    self.prev_rgb = self._rgb(self.prev[1])
                self._append(self.prev_rgb, self.prev[1])
        self.prev, self.prev_rgb, self.last_time = (t, frame), cur_rgb, t

    def finish(self) -> None:
        """The grid ends at the first point at or past the last frame."""
        if self.prev is None:
            return
        if (self.count - 1) / self.fps < self.last_time - _GRID_EPS:
            rgb = self.prev_rgb if self.prev_rgb is not None else self._rgb(self.prev[1])
            self._append(rgb, self.prev[1])


def pad_frames(frames: np.ndarray, min_side: int) -> np.ndarray:
    """Zero-pad bottom/right so both sides reach `min_side` (as training batches pad)."""
    _, h, w, _ = frames.shape  # [T,h,w,3]
    if h >= min_side and w >= min_side:
        return frames
    out = np.zeros((len(frames), max(h, min_side), max(w, min_side), 3), dtype=np.uint8)
    out[:, :h, :w] = frames
    return out


def source_frames(path: Path, limits: Limits) -> Iterator[tuple[float, av.VideoFrame]]:
    """(seconds from the first frame, frame) in presentation order, held to the limits on
    what the decoder actually yields. The decode deadline counts the time spent inside the
    decoder, not the time a streaming caller spends between pulls (the model's work)."""
    spent = 0.0
    origin: float | None = None
    count = 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = CODEC_THREADS
            frames = container.decode(stream)
            while True:
                started = time.monotonic()
                frame = next(frames, None)
                spent += time.monotonic() - started
                if frame is None:
                    return
                if frame.time is None:
                    raise Undecodable("a decoded frame carries no timestamp; re-encode the "
                                      "video")
                origin = frame.time if origin is None else origin
                t = frame.time - origin
                count += 1
                if count > limits.max_frames or t > limits.max_duration_s:
                    raise VideoLimit(f"the video decodes past the limits ({count} frames, "
                                     f"{t:.1f} s; limits {limits.max_frames} frames, "
                                     f"{limits.max_duration_s:g} s); send shorter clips")
                if spent > limits.decode_timeout_s:
                    raise DeadlineExceeded(f"decoding took longer than "
                                           f"{limits.decode_timeout_s:g} s; send a shorter or "
                                           "smaller video")
                yield t, frame
    except av.FFmpegError as err:
        raise Undecodable(f"the video stream is corrupt ({err.strerror or err}); re-encode "
                          f"or upload the complete file") from err


def decode_video(path: Path, meta: VideoMeta, spec: InputSpec, limits: Limits,
                 detect_rate: float | None = None) -> Decoded:
    """Every frame at once: resample to spec.fps, resize by spec.resized, pad to min_side;
    with `detect_rate`, also keep the key frames at that rate for the detector. The service
    streams instead (service/frame_stream.py); this whole-video form serves tests and
    benchmarks, and both make the same grid."""
    width, height, scale = spec.resized(meta.width, meta.height)
    keep = ((detector_size(meta.width, meta.height), detect_rate) if detect_rate is not None
            else None)
    grid: list[np.ndarray] = []
    resampler = Resampler(spec.fps, (width, height), lambda _, rgb: grid.append(rgb), keep)
    for t, frame in source_frames(path, limits):
        resampler.push(t, frame)
    resampler.finish()
    if not grid:
        raise Undecodable("the video stream holds no decodable frame")
    times = np.arange(len(grid), dtype=np.float64) / spec.fps
    return Decoded(meta, pad_frames(np.stack(grid), spec.min_side), times, scale,
                   (width, height), resampler.kept)


def keyframe_times(duration_s: float, rate: float) -> np.ndarray:
    """float64 [K] key-frame times t = k / rate for k >= 0 while t < duration_s.

    AVA style, as training (`iter_windows`): key frames at whole seconds (rate 1) counted from
    the first frame, never a key frame at or past the end of the video.
    """
    count = max(1, math.ceil(duration_s * rate - _GRID_EPS))
    return np.arange(count, dtype=np.float64) / rate


def clip_windows(decoded: Decoded, times: np.ndarray, spec: InputSpec) -> np.ndarray:
    """uint8 [K, spec.frames, h, w, 3]: windows centred on `times` (key frame at frames // 2).

    Window frame i sits at t + (i - frames // 2) / fps and takes the nearest decoded frame;
    times before the start or past the end repeat the edge frames, as training does.
    """
    offsets = (np.arange(spec.frames) - spec.frames // 2) / spec.fps  # [F]
    targets = np.asarray(times, dtype=np.float64)[:, None] + offsets[None, :]  # [K,F]
    picks = nearest_indices(decoded.times, targets.reshape(-1)).reshape(targets.shape)
    return decoded.frames[picks]  # [K,F,h,w,3]
