"""Request and response bodies (pydantic): what the OpenAPI docs at /docs show."""

from __future__ import annotations

import enum
from typing import Any, Literal

from pydantic import BaseModel, Field

SESSION_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"


class MemoryStatus(enum.StrEnum):
    warm = "warm"  # every second of the memory window that could exist is there
    partial = "partial"  # some of them
    cold = "cold"  # none (a session's first key frame, or a video of one second)
    degraded = "degraded"  # the memory store is unavailable: answered without memory


class ClipStatus(enum.StrEnum):
    new = "new"  # the next clip in order
    gap = "gap"  # clips between the last one seen and this one are missing
    out_of_order = "out_of_order"  # an index below the last one seen, not seen before
    duplicate = "duplicate"  # a retry: the stored answer, nothing written (X-Clip-Status only)
    unknown = "unknown"  # store unavailable: order cannot be checked


class CommitOutcome(enum.StrEnum):
    stored = "stored"  # this clip's memory and answer are in the store (a retry replays this)
    not_stored = "not_stored"  # they are not, and never will be (fenced): a retry recomputes
    # the store closed the connection after the commit was sent: retry this clip_index; the
    # retry replays the stored answer if the commit landed, else computes the clip again
    unknown = "unknown"


class Action(BaseModel):
    id: int
    name: str
    score: float = Field(ge=0.0, le=1.0)


class Person(BaseModel):
    box: list[float] = Field(description="x1, y1, x2, y2 normalised to [0,1] of the frame")
    person_id: int | None = None
    score: float | None = Field(None, description="detector score; null for given boxes")
    actions: list[Action] = Field(description="highest score first")


class Keyframe(BaseModel):
    timestamp: float = Field(description="seconds from the start of the video (a session: "
                                         "of the session, start_s + time in the clip)")
    memory: MemoryStatus
    persons: list[Person]


class VideoInfo(BaseModel):
    width: int
    height: int
    fps: float
    duration_s: float
    frames: int


class ModelRef(BaseModel):
    name: str
    version: str
    runtime: str
    device: str
    trained_on: str = Field(description="the action model's training data, e.g. "
                            "synthetic-interactions-v3 or ava-v2.2")
    label_set: str = Field(description="its action classes, e.g. synthetic-20, ava-v2.2-80")
    real_footage: bool = Field(description="false: trained on synthetic video only; its "
                               "actions mean nothing on real footage")
    detector: str | None = Field(description="the artifact detector that finds persons when "
                                 "no boxes are sent; null: none")


class SessionClip(BaseModel):
    id: str
    clip_index: int
    start_s: float
    status: ClipStatus
    missing: list[int] = Field(description="clip indices skipped before this one")
    commit: CommitOutcome = Field(description="whether this clip's memory was stored: "
                                              "stored, not_stored, or unknown (retry it)")
    model_changed_from: str | None = Field(
        None, description="the model version this session was started under, when another "
        "version now serves it: its memory is not read across versions, so this clip starts "
        "cold")


class DetectResponse(BaseModel):
    model: ModelRef
    persons_from: Literal["detector", "boxes"] = Field(
        description="who placed the person boxes: model.detector, or the request's boxes")
    video: VideoInfo
    memory: MemoryStatus
    keyframes: list[Keyframe]


class ClipResponse(DetectResponse):
    session: SessionClip


class SessionCreate(BaseModel):
    id: str | None = Field(None, pattern=SESSION_ID_PATTERN,
                           description="client-chosen id; generated when absent")
    # strict: JSON true/false or 1.5 are not seconds (lax mode would read false as 0)
    ttl_s: int | None = Field(None, ge=1, le=7 * 24 * 3600, strict=True,
                              description="sliding TTL (default AIA_SESSION_TTL_S)")
    lookahead_s: int | None = Field(None, ge=0, le=3600, strict=True,
                                    description="future seconds a clip's key frames may wait "
                                                "for (default AIA_LOOKAHEAD_S)")


class SessionInfo(BaseModel):
    id: str
    created_at: float
    ttl_s: int
    lookahead_s: int
    model_version: str
    clips_seen: int
    last_index: int
    seen: list[int]
    memory_seconds: int = Field(description="seconds of memory the session holds now")


class LabelInfo(BaseModel):
    id: int
    name: str
    group: str
    evaluated: bool


class DetectorInfo(BaseModel):
    name: str
    trained_on: str
    classes: dict[int, str]
    person_class_id: int
    score_threshold: float


class ModelInfo(BaseModel):
    name: str
    version: str
    runtime: str
    device: str
    trained_on: str
    label_set: str
    real_footage: bool = Field(description="false: synthetic video only; its actions mean "
                               "nothing on real footage")
    detector: str | None = Field(description="the detector in use (AIA_DETECTOR or the "
                                 "artifact's default)")
    detectors: list[DetectorInfo] = Field(description="every detector the artifact carries")
    dtype: str
    labels: list[LabelInfo]
    input: dict[str, Any]
    training: dict[str, Any]
    parity: dict[str, Any]
    serving: bool = Field(True, description="answers new requests; false: replaced, finishing "
                                            "the requests that started on it")


class ModelsResponse(BaseModel):
    models: list[ModelInfo] = Field(description="loaded versions, the serving one first")
    previous: str | None = Field(None, description="the version served before this one "
                                                   "(POST /v1/admin/rollback returns to it)")
    available: list[str] = Field(default_factory=list, description="versions published in "
                                 "AIA_MODELS_DIR, oldest first")


class ReloadRequest(BaseModel):
    version: str | None = Field(None, description="a published version (default: the one "
                                "the models directory's `current` names)")


class ReloadResponse(BaseModel):
    version: str = Field(description="the version now serving")
    previous: str | None = Field(description="the version served before it")


class Health(BaseModel):
    status: str


class Problem(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    request_id: str | None = None
