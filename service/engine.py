"""The one orchestrator: runs the stages of a request in order (docs/architecture.md,
"request path").

Stages never call each other: probe, key frames, features over a frame stream (decode,
detection and graph 1 a batch of key frames at a time, so memory does not grow with the
video) and head (service.stages: threads, the detector slot and the batcher's one model
thread), memory read / write
(service.session_steps over service.store), labels and serialisation (service.render). The
engine times each stage and makes one `observe` call per request. A store failure degrades
memory, never the request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from service.decode import VideoMeta
from service.detection import Frames, track
from service.errors import CostLimit, SessionNotFound
from service.load import Load
from service.metrics import Metrics
from service.params import ClipParams, DetectParams, OutputFormat
from service.render import (
    CSV_MEDIA,
    JSON_MEDIA,
    csv_from_json,
    degrade,
    detect_response,
    to_csv,
)
from service.schemas import (
    ClipResponse,
    ClipStatus,
    CommitOutcome,
    DetectResponse,
    MemoryStatus,
    SessionClip,
)
from service.session_steps import SessionSteps
from service.session_tracks import track_clip
from service.stages import EngineOptions, ModelStages, ServedModel
from service.store import MemoryStore, SessionRecord
from service.timings import Timings, timed
from service.window import second_of, status_of


@dataclass(frozen=True)
class Answer:
    body: bytes
    media_type: str
    headers: dict[str, str] = field(default_factory=dict)


# (session, the serving version) -> (an older version holding it, its record), or None
SessionsElsewhere = Callable[[str, str], Awaitable[tuple[str, SessionRecord] | None]]


class Engine:
    def __init__(self, served: ServedModel, store: MemoryStore, metrics: Metrics,
                 options: EngineOptions, sessions_elsewhere: SessionsElsewhere | None = None
                 ) -> None:
        self.served, self.store, self.metrics, self.options = served, store, metrics, options
        self.stages = ModelStages(served, options)
        self.window = served.artifact.input.window
        self.load = Load()  # answers in progress and their drain rate (Retry-After)
        self.sessions_elsewhere = sessions_elsewhere
        self.version = served.ref.version

    # ------------------------------------------------------------------ whole video (offline)

    async def detect(self, video: Path, params: DetectParams, video_id: str) -> Answer:
        """Two passes as validation: every key frame's persons, then each key frame's head
        with the memory of past and future key frames in the window."""
        with self.load.answering():
            answer = await self._detect(video, params, video_id)
        answer.headers["X-Model-Version"] = self.version
        return answer

    async def _detect(self, video: Path, params: DetectParams, video_id: str) -> Answer:
        timings, stages = Timings(), self.stages
        try:
            meta = await timed(timings, "decode", stages.probe(video))
            frames = stages.keyframes(meta, params.boxes)
            # detector key frames over what decodes, not what the container declared
            async with stages.open_stream(video, meta, frames, open_ended=True) as stream:
                frames, feats, objects = await stages.features(stream, frames, timings)
            if any(len(boxes) for boxes in frames.boxes):  # given or detected: track them
                with timings.stage("detect"):
                    frames.person_ids = track(frames, feats)
            seconds = [second_of(t) for t in frames.times]
            own = stages.own_seconds(seconds, feats)
            statuses = [status_of(set(self.window.seconds_around(s)) & set(own), own)
                        for s in seconds]
            logits = await stages.head(feats, objects, [own] * len(seconds), seconds, timings)
            with timings.stage("serialise"):
                response = self._response(meta, frames, frames.times, statuses, False, logits,
                                          params)
                answer = render(response, params.format, video_id)
            self._count(len(seconds), statuses, False)
            return answer
        finally:
            self.metrics.observe_stages(timings.seconds)

    # ------------------------------------------------------------------ session clips

    async def session_clip(self, session: str, video: Path, clip: ClipParams,
                           params: DetectParams) -> Answer:
        with self.load.answering():
            answer = await self._session_clip(session, video, clip, params)
        answer.headers["X-Model-Version"] = self.version
        return answer

    async def _session_clip(self, session: str, video: Path, clip: ClipParams,
                            params: DetectParams) -> Answer:
        timings = Timings()
        steps = SessionSteps(self.store, session, self.options.lock_ttl_s)
        try:
            record, changed_from = await self._record(steps)
            await steps.lock()
            cached = await steps.cached_answer(clip.clip_index)
            if cached is not None:
                return replay(cached, params.format, session)
            return await self._clip(steps, record, video, clip, params, timings, changed_from)
        finally:
            await steps.release()
            self.metrics.observe_stages(timings.seconds)

    async def _record(self, steps: SessionSteps) -> tuple[SessionRecord | None, str | None]:
        """The session's record; one started under an older model version is taken over
        (created again under this one, its old memory never read): (its record there, which
        keeps the clip order going, and that version)."""
        try:
            return await steps.record(), None
        except SessionNotFound:
            if self.sessions_elsewhere is None:
                raise
            found = await self.sessions_elsewhere(steps.session, self.version)
            if found is None:
                raise
            older, old_record = found
            await steps.take_over(old_record)
            return old_record, older

    async def _clip(self, steps: SessionSteps, record: SessionRecord | None, video: Path,
                    clip: ClipParams, params: DetectParams, timings: Timings,
                    changed_from: str | None = None) -> Answer:
        stages = self.stages
        self._check_gap(record, clip.clip_index)
        meta = await timed(timings, "decode", stages.probe(video))
        frames = stages.keyframes(meta, params.boxes)
        start_s = clip.start_s if clip.start_s is not None else clip.clip_index * meta.duration_s
        seconds = [second_of(start_s + t) for t in frames.times]
        lookahead = record.lookahead_s if record is not None else 0
        windows = [[w for w in self.window.seconds_around(s, lookahead) if w >= 0]
                   for s in seconds]
        wanted = sorted({w for window in windows for w in window} - set(seconds))
        # the key frames (and memory's seconds) were fixed above, from what was declared
        async with stages.open_stream(video, meta, frames, open_ended=False) as stream:
            (frames, feats, objects), stored = await asyncio.gather(
                stages.features(stream, frames, timings),
                timed(timings, "memory_read", steps.read(wanted)))
        with timings.stage("detect"):  # persons from the detector or the client: both tracked
            tracks = track_clip(stored.tracker, start_s + frames.times, frames.boxes, feats)
            frames.person_ids = tracks.person_ids
        own = stages.own_seconds(seconds, feats)
        sources, statuses = [], []
        for window in windows:
            visible = {w: f for w, f in (stored.memory or {}).items() if w in window}
            visible.update({w: f for w, f in own.items() if w in window})
            sources.append(visible)
            statuses.append(MemoryStatus.degraded if steps.degraded
                            else status_of(window, visible))
        logits = await stages.head(feats, objects, sources, seconds, timings)
        status, missing = clip_order(record, clip.clip_index)
        with timings.stage("serialise"):
            response = ClipResponse(
                **self._response(meta, frames, start_s + frames.times, statuses,
                                 steps.degraded, logits, params).model_dump(),
                # the body the store keeps (and a retry replays) is the stored one
                session=SessionClip(id=steps.session, clip_index=clip.clip_index,
                                    start_s=start_s, status=status, missing=missing,
                                    commit=CommitOutcome.stored,
                                    model_changed_from=changed_from))
            body = response.model_dump_json().encode()
        outcome = CommitOutcome.not_stored
        if not steps.degraded:
            outcome = await timed(timings, "memory_write", steps.commit(
                clip.clip_index, own, body, tracks.state))
        if outcome is not CommitOutcome.stored:
            response = degrade(response, outcome)  # never claim memory that was not kept
            body = response.model_dump_json().encode()
        self._count(len(seconds), statuses, steps.degraded)
        headers = {"X-Clip-Status": status.value}
        if params.format is OutputFormat.ava_csv:
            return Answer(to_csv(response, steps.session), CSV_MEDIA, headers)
        return Answer(body, JSON_MEDIA, headers)

    # ------------------------------------------------------------------ response, metrics

    def _response(self, meta: VideoMeta, frames: Frames, times: np.ndarray,
                  statuses: Sequence[MemoryStatus], degraded: bool,
                  logits: Sequence[np.ndarray], params: DetectParams) -> DetectResponse:
        artifact = self.served.artifact
        return detect_response(self.served.ref, artifact.labels,
                               artifact.config.classifier.groups, meta, frames, times,
                               statuses, degraded, logits, params)

    def _check_gap(self, record: SessionRecord | None, index: int) -> None:
        """A clip far past the last one seen would make the answer list every index skipped
        and the store keep them: bounded by max_clip_gap."""
        gap = self.options.max_clip_gap
        if record is not None and index > record.last_index + gap:
            raise CostLimit(f"clip_index={index} lies {index - record.last_index} past the "
                            f"session's last clip ({record.last_index}); at most {gap} ahead "
                            "(AIA_MAX_CLIP_GAP): number clips 0, 1, 2, ... in order",
                            "max_clip_gap", gap)

    def _count(self, keyframes: int, statuses: Sequence[MemoryStatus], degraded: bool) -> None:
        self.metrics.clips.inc()
        self.metrics.keyframes.inc(keyframes)
        for status in statuses:
            result = ("degraded" if degraded else
                      "miss" if status is MemoryStatus.cold else "hit")
            self.metrics.memory_events.labels(result).inc()


def clip_order(record: SessionRecord | None, index: int) -> tuple[ClipStatus, list[int]]:
    """new / gap (with the skipped indices) / out_of_order, from what the store saw."""
    if record is None:
        return ClipStatus.unknown, []
    last = record.last_index
    if index < last:
        return ClipStatus.out_of_order, []
    seen = set(record.seen)
    missing = [i for i in range(last + 1, index) if i not in seen]
    return (ClipStatus.gap if missing else ClipStatus.new), missing


def replay(cached: bytes, fmt: OutputFormat, session: str) -> Answer:
    """A retry: the stored answer, byte for byte; nothing runs, nothing is written."""
    headers = {"X-Clip-Status": ClipStatus.duplicate.value}
    if fmt is OutputFormat.ava_csv:
        return Answer(csv_from_json(cached, session), CSV_MEDIA, headers)
    return Answer(cached, JSON_MEDIA, headers)


def render(response: DetectResponse, fmt: OutputFormat, video_id: str) -> Answer:
    if fmt is OutputFormat.ava_csv:
        return Answer(to_csv(response, video_id), CSV_MEDIA)
    return Answer(response.model_dump_json().encode(), JSON_MEDIA)
