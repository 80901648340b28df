"""Logits -> the response: scores, label filtering, JSON bytes or AVA CSV rows."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

import numpy as np

from model.config import ClassGroup
from model.labels import Label
from model.postprocess import action_scores
from service.decode import VideoMeta
from service.detection import Frames
from service.params import DetectParams
from service.schemas import (
    Action,
    ClipResponse,
    CommitOutcome,
    DetectResponse,
    Keyframe,
    MemoryStatus,
    ModelRef,
    Person,
    VideoInfo,
)
from service.window import overall_status

CSV_MEDIA = "text/csv; charset=utf-8"
JSON_MEDIA = "application/json"


def scores_of(logits: np.ndarray, groups: tuple[ClassGroup, ...]) -> np.ndarray:
    """float32 [N,A] logits -> [N,A] scores in [0,1] (pose softmax, the rest sigmoid)."""
    return action_scores(logits, groups)


def persons_of(boxes: np.ndarray, scores: np.ndarray, labels: Sequence[Label],
               params: DetectParams, found: np.ndarray | None = None,
               person_ids: Sequence[int] | None = None) -> list[Person]:
    """boxes [n,4] normalised, scores [n,A] -> persons with their top actions; `found` [n]:
    detector scores, `person_ids` [n]: track ids (None for client boxes)."""
    persons = []
    for p, (box, row) in enumerate(zip(boxes.tolist(), scores, strict=True)):
        order = np.argsort(-row, kind="stable")
        actions = []
        for column in order:
            score = float(row[column])
            if score < params.min_score or len(actions) == params.top_k:
                break
            label = labels[column]
            if params.labels is None or label.id in params.labels:
                actions.append(Action(id=label.id, name=label.name,
                                      score=round(min(max(score, 0.0), 1.0), 5)))
        persons.append(Person(
            box=[round(v, 5) for v in box], actions=actions,
            score=None if found is None else round(float(found[p]), 5),
            person_id=None if person_ids is None else int(person_ids[p])))
    return persons


def detect_response(model: ModelRef, labels: Sequence[Label], groups: tuple[ClassGroup, ...],
                    meta: VideoMeta, frames: Frames, times: np.ndarray,
                    statuses: Sequence[MemoryStatus], degraded: bool,
                    logits: Sequence[np.ndarray], params: DetectParams) -> DetectResponse:
    """The answer for key frames at `times` (their boxes, scores and ids in `frames`), each
    with its memory status and logits [n,A]."""
    ids = frames.person_ids or [None] * len(times)
    keyframes = [Keyframe(timestamp=round(float(t), 3), memory=status, persons=persons_of(
        boxes, scores_of(z, groups), labels, params, found, person_ids))
        for t, status, boxes, z, found, person_ids in zip(
            times, statuses, frames.boxes, logits, frames.scores, ids, strict=True)]
    video = VideoInfo(width=meta.width, height=meta.height, fps=meta.fps,
                      duration_s=meta.duration_s, frames=meta.frames)
    given = bool(len(frames.scores)) and all(found is None for found in frames.scores)
    return DetectResponse(model=model, persons_from="boxes" if given else "detector",
                          video=video, memory=overall_status(statuses, degraded),
                          keyframes=keyframes)


def degrade(response: ClipResponse, outcome: CommitOutcome) -> ClipResponse:
    """The same answer, saying its memory was not kept (not stored, or not known to be)."""
    keyframes = [k.model_copy(update={"memory": MemoryStatus.degraded})
                 for k in response.keyframes]
    session = response.session.model_copy(update={"commit": outcome})
    return response.model_copy(update={"memory": MemoryStatus.degraded,
                                       "keyframes": keyframes, "session": session})


def to_csv(response: DetectResponse, video_id: str) -> bytes:
    """AVA rows: video_id,timestamp,x1,y1,x2,y2,action_id,score[,person_id]."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for keyframe in response.keyframes:
        for person in keyframe.persons:
            extra = [] if person.person_id is None else [person.person_id]
            for action in person.actions:
                writer.writerow([video_id, f"{keyframe.timestamp:.3f}",
                                 *(f"{v:.5f}" for v in person.box), action.id,
                                 f"{action.score:.5f}", *extra])
    return out.getvalue().encode()


def csv_from_json(body: bytes, video_id: str) -> bytes:
    """A stored clip answer (JSON) rendered again as CSV, for a retry that asks for CSV."""
    return to_csv(ClipResponse.model_validate_json(body), video_id)
