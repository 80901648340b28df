"""The model-side stages of a request, each one call the engine makes in order: probe
(a thread), key frames (given or pending detection), the frame stream, features (walking
the key frames in time order: decode as far as a batch needs, the detector slot, graph 1
through the batcher) and head (graph 2 through the batcher). Stages never call each other;
the engine passes what one returns to the next."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.to_thread
import numpy as np

from exporters.artifact import Artifact
from service.batcher import Batcher
from service.decode import Limits, VideoMeta, keyframe_times, probe_video
from service.detection import (
    Detector,
    Frames,
    detect_pictures,
    given_frames,
    pending_frames,
    roi_boxes,
)
from service.errors import InvalidBoxes, NoPersonSource
from service.frame_stream import FrameStream
from service.params import BoxesAt, CostBounds
from service.schemas import ModelRef
from service.settings import Settings
from service.timings import Timings, timed
from service.window import memory_inputs, pad_objects

BOX_TIME_SLACK_S = 0.5  # a client box may sit this far past the last frame (rounding)


@dataclass(frozen=True)
class ServedModel:
    """What one loaded model version is: its artifact, the `model` block of its answers, the
    batcher in front of its graphs and its person detector (None: clients send boxes)."""

    artifact: Artifact
    ref: ModelRef
    batcher: Batcher
    detector: Detector | None = None


@dataclass(frozen=True)
class EngineOptions:
    """The settings the engine reads, built once."""

    limits: Limits
    max_batch: int = 8
    lock_ttl_s: float = 10.0  # a session clip's lock lease, renewed while the clip runs
    keyframe_rate: float = 1.0  # detector key frames per second
    max_persons: int = 64  # detector persons kept per key frame
    bounds: CostBounds = field(default_factory=CostBounds)
    max_clip_gap: int = 1000  # a session's clip_index past its last one seen

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineOptions:
        return cls(Limits.from_settings(settings), settings.max_batch,
                   settings.session_lock_s, settings.keyframe_rate,
                   settings.max_persons, CostBounds.from_settings(settings),
                   settings.max_clip_gap)


class ModelStages:
    def __init__(self, served: ServedModel, options: EngineOptions) -> None:
        self.served, self.options = served, options
        self.spec = served.artifact.input
        self.window = self.spec.window
        # the detector is model work too: one call at a time, off the event loop
        self._detector_slot = anyio.CapacityLimiter(1)

    async def probe(self, video: Path) -> VideoMeta:
        return await anyio.to_thread.run_sync(probe_video, video, self.options.limits)

    @contextlib.asynccontextmanager
    async def open_stream(self, video: Path, meta: VideoMeta, frames: Frames,
                          open_ended: bool) -> AsyncIterator[FrameStream]:
        """The video, decoded as the key frames ask for it. Detector key frames are
        `frames.times`, or with `open_ended` one every 1 / rate s while the video lasts
        (the declared duration can lie); client key frames: the ones with boxes. Closed in
        a worker thread, shielded: a request cancelled mid-decode waits for that decode."""
        rate = self.options.keyframe_rate
        if frames.detect:
            stream = FrameStream(video, meta, self.spec, self.options.limits,
                                 None if open_ended else frames.times, rate,
                                 detector_pictures=True)
        else:
            stream = FrameStream(video, meta, self.spec, self.options.limits,
                                 frames.times[busy_in_time_order(frames)])
        try:
            yield stream
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(stream.close)

    def detector_times(self, duration_s: float) -> np.ndarray:
        """The key frames the detector looks at over `duration_s` seconds (bounded)."""
        times = keyframe_times(duration_s, self.options.keyframe_rate)
        self.options.bounds.check_keyframes(
            len(times), f"{duration_s:.1f} s of video at {self.options.keyframe_rate:g} key "
            "frames per second")
        return times

    def keyframes(self, meta: VideoMeta, boxes: Sequence[BoxesAt] | None) -> Frames:
        """The client's key frames and boxes, or the detector's key frames still to fill."""
        if boxes is None and self.served.detector is not None:
            return pending_frames(self.detector_times(meta.duration_s))
        if boxes is None:
            raise NoPersonSource("this model has no person detector; pass `boxes` (JSON: "
                                 '[{"timestamp": seconds, "boxes": [[x1, y1, x2, y2], ...]}], '
                                 "coordinates normalised to [0,1])")
        if meta.duration_s > 0:  # 0: not declared; checked again once decoded
            check_times(boxes, meta.duration_s)
        return given_frames(boxes)

    async def features(self, stream: FrameStream, frames: Frames, timings: Timings
                       ) -> tuple[Frames, list[np.ndarray], list[np.ndarray]]:
        """Walk the key frames in time order a batch at a time (decode as far as the batch
        needs, the detector when the persons are still to find, graph 1), releasing each
        batch's frames: (the key frames with their persons, person [n,D] and object [o,D]
        features per key frame). Key frames without persons skip graph 1."""
        step = self.options.max_batch
        if not frames.detect:
            feats = _Features(len(frames.times), self.spec.feature_dim)
            busy = busy_in_time_order(frames)
            for start in range(0, len(busy), step):
                rows = busy[start:start + step]
                await self._graph1(stream, frames, rows, feats, timings)
                await anyio.to_thread.run_sync(stream.release, float(frames.times[rows[-1]]))
            await self._check_end(stream, frames, timings)
            return frames, feats.persons, feats.objects
        found = pending_frames(np.zeros(0))
        feats = _Features(0, self.spec.feature_dim)
        while True:
            times = await timed(timings, "decode", anyio.to_thread.run_sync(stream.take, step))
            if not len(times):
                break
            self.options.bounds.check_keyframes(
                len(found.times) + len(times), f"{stream.duration_s:.1f}+ s of video at "
                f"{self.options.keyframe_rate:g} key frames per second")
            pictures = await timed(timings, "decode", anyio.to_thread.run_sync(
                stream.detector_pictures, times))
            batch = await timed(timings, "detect", anyio.to_thread.run_sync(
                detect_pictures, self.served.detector, pictures, times,
                self.options.max_persons, self.spec.max_objects,
                limiter=self._detector_slot))
            first = len(found.times)
            found.extend(batch)
            feats.grow(len(times))
            rows = [first + i for i, boxes in enumerate(batch.boxes) if len(boxes)]
            if rows:
                await self._graph1(stream, found, rows, feats, timings)
            await anyio.to_thread.run_sync(stream.release, float(times[-1]))
        found.detect = False
        return found, feats.persons, feats.objects

    async def _graph1(self, stream: FrameStream, frames: Frames, rows: list[int],
                      feats: _Features, timings: Timings) -> None:
        with timings.stage("decode"):
            clips = await anyio.to_thread.run_sync(
                stream.windows, frames.times[rows])  # [B,T,H,W,3]
        boxes, n = roi_boxes(frames, rows, stream.size, self.spec)
        out = await timed(timings, "features", self.served.batcher.features(clips, boxes))
        for i, row in enumerate(rows):
            feats.persons[row] = out[:n][boxes[:n, 0] == i]
            feats.objects[row] = out[n:][boxes[n:, 0] == i]

    async def _check_end(self, stream: FrameStream, frames: Frames, timings: Timings) -> None:
        """Client key frames past the end of what decodes are refused, as the declared
        duration could not tell (decoding on, keeping nothing, only as far as they lie)."""
        if not len(frames.times):
            return
        latest = float(frames.times.max()) - BOX_TIME_SLACK_S
        await timed(timings, "decode", anyio.to_thread.run_sync(stream.reach, latest))
        if stream.ended:
            check_times(frames, stream.duration_s)

    def own_seconds(self, seconds: Sequence[int],
                    feats: Sequence[np.ndarray]) -> dict[int, np.ndarray]:
        """{second: the first `per_second` person features of its first key frame}: what a
        request adds to memory."""
        own: dict[int, np.ndarray] = {}
        for s, f in zip(seconds, feats, strict=True):
            own.setdefault(s, f[: self.window.per_second])
        return own

    async def head(self, feats: Sequence[np.ndarray], objects: Sequence[np.ndarray],
                   sources: Sequence[Mapping[int, np.ndarray]], seconds: Sequence[int],
                   timings: Timings) -> list[np.ndarray]:
        """Logits [n,A] per key frame; key frames share calls (padding never changes an
        answer: masked slots, or the reference's padding counted inside the graph)."""
        out = [np.zeros((0, self.spec.num_classes), np.float32) for _ in feats]
        busy = [i for i, f in enumerate(feats) if len(f)]
        d, step = self.spec.feature_dim, self.options.max_batch
        for start in range(0, len(busy), step):
            chunk = busy[start:start + step]
            memory, mask, offsets = memory_inputs(
                self.window, [sources[i] for i in chunk], [seconds[i] for i in chunk], d)
            person = np.concatenate([feats[i] for i in chunk])  # [N,D]
            batch = np.repeat(np.arange(len(chunk)), [len(feats[i]) for i in chunk])  # [N]
            things, things_mask = pad_objects(objects, chunk, d)
            logits = await timed(timings, "head", self.served.batcher.head(
                person, batch.astype(np.int64), things, things_mask, memory, mask, offsets))
            bounds = np.cumsum([0] + [len(feats[i]) for i in chunk])
            for i, lo, hi in zip(chunk, bounds[:-1], bounds[1:], strict=True):
                out[i] = logits[lo:hi]
        return out


class _Features:
    """Person [n,D] and object [o,D] features per key frame, filled a batch at a time."""

    def __init__(self, keyframes: int, dim: int) -> None:
        self.dim = dim
        self.persons: list[np.ndarray] = []
        self.objects: list[np.ndarray] = []
        self.grow(keyframes)

    def grow(self, k: int) -> None:
        self.persons += [np.zeros((0, self.dim), np.float32) for _ in range(k)]
        self.objects += [np.zeros((0, self.dim), np.float32) for _ in range(k)]


def busy_in_time_order(frames: Frames) -> list[int]:
    """Key frames with persons, earliest first (ties in the client's order)."""
    order = np.argsort(frames.times, kind="stable")
    return [int(i) for i in order if len(frames.boxes[i])]


def check_times(boxes: Sequence[BoxesAt] | Frames, duration_s: float) -> None:
    times = boxes.times if isinstance(boxes, Frames) else [b.timestamp for b in boxes]
    late = [float(t) for t in times if t > duration_s + BOX_TIME_SLACK_S]
    if late:
        raise InvalidBoxes(f"boxes at {late[:3]} s lie past the end of the video "
                           f"({duration_s:.2f} s); timestamps are seconds from the "
                           "start of the uploaded video")
