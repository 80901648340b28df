"""Service settings: pydantic-settings, every field also an `AIA_`-prefixed environment variable.

Built once in `main()` / `create_app()` and passed down; nothing reads the environment at
import time. `aia serve` flags override the environment.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.malloc import MMAP_THRESHOLD

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "artifacts" / "aia-synth-tiny"


class RuntimeKind(enum.StrEnum):
    onnx = "onnx"
    torchscript = "torchscript"
    eager = "eager"


class Device(enum.StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIA_", extra="ignore")

    # where and what
    model_dir: Path = DEFAULT_MODEL
    # a models directory (exporters/models_dir.py): serve the version `current` names and
    # switch on reload; when set, model_dir is not used
    models_dir: Path | None = None
    models_watch_s: float = Field(0.0, ge=0)  # poll `current` this often (0: reload on demand)
    detector: str | None = None  # which of the artifact's detectors; None: its default
    # keep detections at or above this score (None: the graph's own threshold, which is the
    # floor: the graph never returns less)
    detector_min_score: float | None = Field(None, ge=0, le=1)
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    runtime: RuntimeKind = RuntimeKind.onnx
    device: Device = Device.auto
    log_level: str = "info"

    # memory store: no URL -> the in-process store (the embedded default)
    redis_url: str | None = None
    redis_timeout_s: float = Field(0.5, gt=0)  # per command; past it the request degrades
    session_ttl_s: int = Field(3600, ge=1)  # sliding: every clip refreshes it
    session_max_seconds: int = Field(600, ge=1)  # memory cap per session, oldest evicted
    local_max_sessions: int = Field(1000, ge=1)  # in-process store bound

    # key frames and memory
    keyframe_rate: float = Field(1.0, gt=0, le=30)  # key frames per second of video
    lookahead_s: int = Field(0, ge=0)  # default streaming lookahead delay (seconds)

    # limits, enforced before the model runs
    max_upload_bytes: int = Field(64 * 1024 * 1024, ge=1)
    max_duration_s: float = Field(600.0, gt=0)
    max_width: int = Field(3840, ge=32)
    max_height: int = Field(2160, ge=32)
    max_frames: int = Field(36_000, ge=1)
    decode_timeout_s: float = Field(60.0, gt=0)
    max_persons: int = Field(64, ge=1)  # client boxes per key frame

    # cost per request, bounded before any work starts (over a bound: 422 naming it)
    max_keyframes: int = Field(120, ge=1)  # given box timestamps, or detector rate x duration
    max_person_keyframes: int = Field(2000, ge=1)  # client boxes summed over key frames
    max_clip_gap: int = Field(1000, ge=1)  # a session's clip_index past its last one seen
    max_field_bytes: int = Field(1 << 20, ge=1)  # any one parameter (query or form field)

    # batching and backpressure
    max_batch: int = Field(8, ge=1)
    max_wait_ms: float = Field(5.0, ge=0)
    queue_size: int = Field(64, ge=1)  # pending model jobs; full -> 429
    request_timeout_s: float = Field(120.0, gt=0)  # deadline -> 504
    drain_s: float = Field(20.0, ge=0)  # graceful shutdown: readiness off, in-flight finish
    # a session clip's lock is a lease renewed every third of it while the clip runs: a
    # replica that dies or loses Redis holds the session for at most this long
    session_lock_s: float = Field(10.0, gt=0)

    # memory handed back to the system (service/malloc.py): arrays this large or larger get
    # their own mapping (0: glibc's moving threshold); free pages trimmed this often (0: never)
    malloc_mmap_threshold: int = Field(MMAP_THRESHOLD, ge=0, le=32 * 1024 * 1024)
    malloc_trim_s: float = Field(10.0, ge=0)

    # auth: sha256 hex digests of accepted API keys (comma separated); empty -> open
    api_key_hashes: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # admin API (POST /v1/admin/reload, /rollback): its own keys; empty -> admin API off
    admin_key_hashes: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("api_key_hashes", "admin_key_hashes", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip().lower() for v in value.split(",") if v.strip()]
        return value
