"""The one orchestrator: runs the stages of a request in order (docs/architecture.md,
"request path").

Stages never call each other: decode (service.decode, in a thread), memory read / write
(service.store), features and head (service.batcher, the one model thread), labels and
serialisation (service.render). The engine times each stage and makes one `observe` call
per request. A store failure degrades memory, never the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio.to_thread
import numpy as np

from exporters.artifact import Artifact
from service.batcher import Batcher
from service.decode import (
    Decoded,
    Limits,
    VideoMeta,
    clip_windows,
    decode_video,
    keyframe_times,
    probe_video,
)
from service.detection import (
    Detector,
    Frames,
    detect_frames,
    given_frames,
    pending_frames,
    roi_boxes,
    track,
)
from service.errors import ClipInFlight, InvalidBoxes, NoPersonSource, SessionNotFound
from service.metrics import Metrics
from service.params import BoxesAt, ClipParams, DetectParams, OutputFormat
from service.render import CSV_MEDIA, JSON_MEDIA, csv_from_json, persons_of, scores_of, to_csv
from service.schemas import (
    ClipResponse,
    ClipStatus,
    DetectResponse,
    Keyframe,
    MemoryStatus,
    ModelRef,
    SessionClip,
    VideoInfo,
)
from service.session_tracks import track_clip
from service.store import MemoryStore, SessionRecord, StoreUnavailable
from service.timings import Timings, timed
from service.window import memory_inputs, overall_status, pad_objects, second_of, status_of

BOX_TIME_SLACK_S = 0.5  # a client box may sit this far past the last frame (rounding)


@dataclass(frozen=True)
class Answer:
    body: bytes
    media_type: str
    headers: dict[str, str] = field(default_factory=dict)


class Engine:
    def __init__(self, artifact: Artifact, model: ModelRef, batcher: Batcher,
                 store: MemoryStore, metrics: Metrics, limits: Limits, max_batch: int,
                 lock_ttl_s: float, detector: Detector | None = None,
                 keyframe_rate: float = 1.0, max_persons: int = 64) -> None:
        self.artifact, self.spec, self.cfg = artifact, artifact.input, artifact.config
        self.window = artifact.input.window
        self.model, self.batcher, self.store, self.metrics = model, batcher, store, metrics
        self.limits, self.max_batch = limits, max_batch
        self.lock_ttl_s = lock_ttl_s
        self.detector, self.keyframe_rate, self.max_persons = detector, keyframe_rate, max_persons
        # the detector is model work too: one call at a time, off the event loop
        self._detector_slot = anyio.CapacityLimiter(1)

    # ------------------------------------------------------------------ whole video (offline)

    async def detect(self, video: Path, params: DetectParams, video_id: str) -> Answer:
        """Two passes as validation: every key frame's persons, then each key frame's head
        with the memory of past and future key frames in the window."""
        timings = Timings()
        try:
            meta = await timed(timings, "decode", self._probe(video))
            frames = self._keyframes(meta, params.boxes)
            decoded = await timed(timings, "decode", self._decode(video, meta, frames.detect))
            if frames.detect:  # key frames over what was decoded, not what was declared
                times = keyframe_times(self._decoded_duration(decoded), self.keyframe_rate)
                frames = await timed(timings, "detect", self._detect(decoded, times))
            self._check_times(frames, self._decoded_duration(decoded))
            feats, objects = await self._features(decoded, frames, timings)
            if any(len(boxes) for boxes in frames.boxes):  # given or detected: track them
                with timings.stage("detect"):
                    frames.person_ids = track(frames, feats)
            seconds = [second_of(t) for t in frames.times]
            own = self._own_seconds(seconds, feats)
            statuses = [status_of(set(self.window.seconds_around(s)) & set(own), own)
                        for s in seconds]
            logits = await self._head(feats, objects, [own] * len(seconds), seconds, timings)
            with timings.stage("serialise"):
                response = self._response(meta, frames, frames.times, statuses, False, logits,
                                          params)
                answer = self._render(response, params.format, video_id)
            self._count(len(seconds), statuses, False)
            return answer
        finally:
            self.metrics.observe_stages(timings.seconds)

    # ------------------------------------------------------------------ session clips

    async def session_clip(self, session: str, video: Path, clip: ClipParams,
                           params: DetectParams) -> Answer:
        timings = Timings()
        token = uuid.uuid4().hex
        record, degraded = await self._session_record(session)
        locked = False
        try:
            if not degraded:
                locked, degraded = await self._lock(session, token)
                cached, degraded = await self._cached(session, clip.clip_index, degraded)
                if cached is not None:
                    return self._replay(cached, params.format, session)
            return await self._clip(session, record, video, clip, params, timings, degraded)
        finally:
            if locked:
                with contextlib.suppress(StoreUnavailable):
                    await self.store.release(session, token)
            self.metrics.observe_stages(timings.seconds)

    async def _clip(self, session: str, record: SessionRecord | None, video: Path,
                    clip: ClipParams, params: DetectParams, timings: Timings,
                    degraded: bool) -> Answer:
        meta = await timed(timings, "decode", self._probe(video))
        frames = self._keyframes(meta, params.boxes)
        start_s = clip.start_s if clip.start_s is not None else clip.clip_index * meta.duration_s
        seconds = [second_of(start_s + t) for t in frames.times]
        lookahead = record.lookahead_s if record is not None else 0
        wanted = sorted({w for s in seconds for w in self.window.seconds_around(s, lookahead)
                         if w >= 0} - set(seconds))
        decoded, (stored, tracker) = await asyncio.gather(
            timed(timings, "decode", self._decode(video, meta, frames.detect)),
            timed(timings, "memory_read", self._read(session, wanted, degraded)))
        degraded = degraded or stored is None
        if frames.detect:
            frames = await timed(timings, "detect", self._detect(decoded, frames.times))
        self._check_times(frames, self._decoded_duration(decoded))
        feats, objects = await self._features(decoded, frames, timings)
        with timings.stage("detect"):  # persons from the detector or the client: both tracked
            tracks = track_clip(tracker, start_s + frames.times, frames.boxes, feats)
            frames.person_ids = tracks.person_ids
        own = self._own_seconds(seconds, feats)
        sources, statuses = [], []
        for s in seconds:
            window = [w for w in self.window.seconds_around(s, lookahead) if w >= 0]
            visible = {w: f for w, f in (stored or {}).items() if w in window}
            visible.update({w: f for w, f in own.items() if w in window})
            sources.append(visible)
            statuses.append(MemoryStatus.degraded if degraded else status_of(window, visible))
        logits = await self._head(feats, objects, sources, seconds, timings)
        status, missing = self._order(record, clip.clip_index)
        times = start_s + frames.times
        with timings.stage("serialise"):
            response = ClipResponse(
                **self._response(meta, frames, times, statuses, degraded, logits,
                                 params).model_dump(),
                session=SessionClip(id=session, clip_index=clip.clip_index, start_s=start_s,
                                    status=status, missing=missing))
            body = response.model_dump_json().encode()
        if not degraded:
            degraded = not await timed(timings, "memory_write", self._commit(
                session, clip.clip_index, own, body, tracks.state))
            if degraded:  # the answer must not claim memory that was not kept
                response = self._degrade(response)
                body = response.model_dump_json().encode()
        self._count(len(seconds), statuses, degraded)
        headers = {"X-Clip-Status": status.value}
        if params.format is OutputFormat.ava_csv:
            return Answer(to_csv(response, session), CSV_MEDIA, headers)
        return Answer(body, JSON_MEDIA, headers)

    # ------------------------------------------------------------------ session store steps

    async def _session_record(self, session: str) -> tuple[SessionRecord | None, bool]:
        try:
            record = await self.store.get_session(session)
        except StoreUnavailable:
            return None, True
        if record is None:
            raise SessionNotFound(f"session {session!r} does not exist or expired; create it "
                                  "with POST /v1/sessions")
        return record, False

    async def _lock(self, session: str, token: str) -> tuple[bool, bool]:
        try:
            if not await self.store.acquire(session, token, self.lock_ttl_s):
                raise ClipInFlight(f"session {session!r} has a clip in flight; send its clips "
                                   "one at a time (retry when the previous one answered)")
        except StoreUnavailable:
            return False, True
        return True, False

    async def _cached(self, session: str, clip_index: int,
                      degraded: bool) -> tuple[bytes | None, bool]:
        if degraded:
            return None, True
        try:
            return await self.store.get_clip(session, clip_index), False
        except StoreUnavailable:
            return None, True

    def _replay(self, cached: bytes, fmt: OutputFormat, session: str) -> Answer:
        """A retry: the stored answer, byte for byte; nothing runs, nothing is written."""
        headers = {"X-Clip-Status": ClipStatus.duplicate.value}
        if fmt is OutputFormat.ava_csv:
            return Answer(csv_from_json(cached, session), CSV_MEDIA, headers)
        return Answer(cached, JSON_MEDIA, headers)

    async def _read(self, session: str, seconds: Sequence[int], degraded: bool
                    ) -> tuple[dict[int, np.ndarray] | None, bytes | None]:
        """(memory of `seconds`, tracker state) in one round trip; (None, None) degraded."""
        if degraded:
            return None, None
        try:
            return await self.store.read_window(session, seconds)
        except StoreUnavailable:
            return None, None

    async def _commit(self, session: str, clip_index: int, own: Mapping[int, np.ndarray],
                      body: bytes, tracker: bytes | None) -> bool:
        try:
            await self.store.commit_clip(session, clip_index, own, body, tracker=tracker)
        except StoreUnavailable:
            return False
        return True

    @staticmethod
    def _order(record: SessionRecord | None, index: int) -> tuple[ClipStatus, list[int]]:
        """new / gap (with the skipped indices) / out_of_order, from what the store saw."""
        if record is None:
            return ClipStatus.unknown, []
        last = record.last_index
        if index < last:
            return ClipStatus.out_of_order, []
        missing = [i for i in range(last + 1, index) if i not in set(record.seen)]
        return (ClipStatus.gap if missing else ClipStatus.new), missing

    @staticmethod
    def _degrade(response: ClipResponse) -> ClipResponse:
        keyframes = [k.model_copy(update={"memory": MemoryStatus.degraded})
                     for k in response.keyframes]
        return response.model_copy(update={"memory": MemoryStatus.degraded,
                                           "keyframes": keyframes})

    # ------------------------------------------------------------------ model stages

    async def _probe(self, video: Path) -> VideoMeta:
        return await anyio.to_thread.run_sync(probe_video, video, self.limits)

    async def _decode(self, video: Path, meta: VideoMeta, detect: bool) -> Decoded:
        """Frames for the action model; with `detect`, also the key frames the detector
        will see, kept near native size."""
        rate = self.keyframe_rate if detect else None
        return await anyio.to_thread.run_sync(decode_video, video, meta, self.spec, self.limits,
                                              rate)

    def _decoded_duration(self, decoded: Decoded) -> float:
        return len(decoded.times) / self.spec.fps

    def _keyframes(self, meta: VideoMeta, boxes: Sequence[BoxesAt] | None) -> Frames:
        if boxes is None and self.detector is not None:
            return pending_frames(keyframe_times(meta.duration_s, self.keyframe_rate))
        if boxes is None:
            raise NoPersonSource("this model has no person detector; pass `boxes` (JSON: "
                                 '[{"timestamp": seconds, "boxes": [[x1, y1, x2, y2], ...]}], '
                                 "coordinates normalised to [0,1])")
        if meta.duration_s > 0:  # 0: not declared; checked again once decoded
            self._check_times(boxes, meta.duration_s)
        return given_frames(boxes)

    @staticmethod
    def _check_times(boxes: Sequence[BoxesAt] | Frames, duration_s: float) -> None:
        times = boxes.times if isinstance(boxes, Frames) else [b.timestamp for b in boxes]
        late = [float(t) for t in times if t > duration_s + BOX_TIME_SLACK_S]
        if late:
            raise InvalidBoxes(f"boxes at {late[:3]} s lie past the end of the video "
                               f"({duration_s:.2f} s); timestamps are seconds from the "
                               "start of the uploaded video")

    async def _detect(self, decoded: Decoded, times: np.ndarray) -> Frames:
        assert self.detector is not None
        return await anyio.to_thread.run_sync(
            detect_frames, self.detector, decoded, times, self.spec.fps, self.max_persons,
            self.spec.max_objects, limiter=self._detector_slot)

    async def _features(self, decoded: Decoded, frames: Frames, timings: Timings
                        ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Person [n,D] and object [o,D] features per key frame; key frames without persons
        skip graph 1."""
        d = self.spec.feature_dim
        persons = [np.zeros((0, d), np.float32) for _ in frames.boxes]
        objects = [np.zeros((0, d), np.float32) for _ in frames.boxes]
        busy = [i for i, b in enumerate(frames.boxes) if len(b)]
        for start in range(0, len(busy), self.max_batch):
            rows = busy[start:start + self.max_batch]
            with timings.stage("decode"):
                clips = await anyio.to_thread.run_sync(
                    clip_windows, decoded, frames.times[rows], self.spec)  # [B,T,h,w,3]
            boxes, n = roi_boxes(frames, rows, decoded.size, self.spec)
            feats = await timed(timings, "features", self.batcher.features(clips, boxes))
            for i, row in enumerate(rows):
                persons[row] = feats[:n][boxes[:n, 0] == i]
                objects[row] = feats[n:][boxes[n:, 0] == i]
        return persons, objects

    def _own_seconds(self, seconds: Sequence[int],
                     feats: Sequence[np.ndarray]) -> dict[int, np.ndarray]:
        """{second: the first persons_per_second person features of its first key frame}."""
        own: dict[int, np.ndarray] = {}
        for s, f in zip(seconds, feats, strict=True):
            own.setdefault(s, f[: self.window.per_second])
        return own

    async def _head(self, feats: Sequence[np.ndarray], objects: Sequence[np.ndarray],
                    sources: Sequence[Mapping[int, np.ndarray]],
                    seconds: Sequence[int], timings: Timings) -> list[np.ndarray]:
        """Logits [n,A] per key frame; key frames share calls (padding never changes an
        answer: masked slots, or the reference's padding counted inside the graph)."""
        a = self.spec.num_classes
        out = [np.zeros((0, a), np.float32) for _ in feats]
        busy = [i for i, f in enumerate(feats) if len(f)]
        for start in range(0, len(busy), self.max_batch):
            chunk = busy[start:start + self.max_batch]
            memory, mask, offsets = memory_inputs(
                self.window, [sources[i] for i in chunk], [seconds[i] for i in chunk],
                self.spec.feature_dim)
            person = np.concatenate([feats[i] for i in chunk])  # [N,D]
            batch = np.repeat(np.arange(len(chunk)), [len(feats[i]) for i in chunk])
            things, things_mask = pad_objects(objects, chunk, self.spec.feature_dim)
            logits = await timed(timings, "head", self.batcher.head(
                person, batch.astype(np.int64), things, things_mask, memory, mask, offsets))
            bounds = np.cumsum([0] + [len(feats[i]) for i in chunk])
            for i, lo, hi in zip(chunk, bounds[:-1], bounds[1:], strict=True):
                out[i] = logits[lo:hi]
        return out

    # ------------------------------------------------------------------ response

    def _response(self, meta: VideoMeta, frames: Frames, times: np.ndarray,
                  statuses: Sequence[MemoryStatus], degraded: bool,
                  logits: Sequence[np.ndarray], params: DetectParams) -> DetectResponse:
        groups, labels = self.cfg.classifier.groups, self.artifact.labels
        ids = frames.person_ids or [None] * len(times)
        keyframes = [Keyframe(timestamp=round(float(t), 3), memory=status, persons=persons_of(
            boxes, scores_of(z, groups), labels, params, found, person_ids))
            for t, status, boxes, z, found, person_ids in zip(
                times, statuses, frames.boxes, logits, frames.scores, ids, strict=True)]
        video = VideoInfo(width=meta.width, height=meta.height, fps=meta.fps,
                          duration_s=meta.duration_s, frames=meta.frames)
        given = bool(len(frames.scores)) and all(found is None for found in frames.scores)
        return DetectResponse(model=self.model, persons_from="boxes" if given else "detector",
                              video=video,
                              memory=overall_status(statuses, degraded), keyframes=keyframes)

    @staticmethod
    def _render(response: DetectResponse, fmt: OutputFormat, video_id: str) -> Answer:
        if fmt is OutputFormat.ava_csv:
            return Answer(to_csv(response, video_id), CSV_MEDIA)
        return Answer(response.model_dump_json().encode(), JSON_MEDIA)

    def _count(self, keyframes: int, statuses: Sequence[MemoryStatus], degraded: bool) -> None:
        self.metrics.clips.inc()
        self.metrics.keyframes.inc(keyframes)
        for status in statuses:
            result = ("degraded" if degraded else
                      "miss" if status is MemoryStatus.cold else "hit")
            self.metrics.memory_events.labels(result).inc()
