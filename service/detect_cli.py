"""`aia detect VIDEO`: the service's engine, in-process, on a local video.

The same stages as POST /v1/detect (decode, the artifact's detector and tracker or the given
boxes, graph 1, graph 2 with the video's memory, labels), built the way service/state.py
builds them, with the in-process memory store. Writes the JSON answer, AVA CSV rows and an
annotated mp4 (service/annotate.py). AIA_* settings apply (limits, key frame rate, batch).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry
from tqdm import tqdm

from exporters.artifact import Artifact, ArtifactError, load_artifact
from exporters.detector_runtime import FrameDetections
from service.annotate import Style, annotate_video
from service.batcher import Batcher
from service.decode import Limits, keyframe_times, probe_video
from service.detection import Detector
from service.engine import Engine
from service.errors import ServiceError
from service.metrics import Metrics
from service.params import (
    DEFAULT_MIN_SCORE,
    DEFAULT_TOP_K,
    CostBounds,
    DetectParams,
    parse_boxes,
)
from service.render import to_csv
from service.runtime import load_runtime
from service.schemas import DetectResponse
from service.settings import Device, RuntimeKind, Settings
from service.stages import ServedModel
from service.state import (
    artifact_formats,
    build_engine,
    honesty_warning,
    load_detector,
    model_ref,
)
from service.store import LocalStore


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", type=Path, help="a local video file (mp4, mkv, webm, ...)")
    parser.add_argument("--model", type=Path, default=None, metavar="DIR",
                        help="artifact directory (AIA_MODEL_DIR; default artifacts/aia-synth-tiny)")
    parser.add_argument("--detector", default=None, metavar="NAME",
                        help="which of the artifact's detectors finds the persons (AIA_DETECTOR;"
                             " default: the artifact's default, e.g. ssdlite-person)")
    parser.add_argument("--out-json", type=Path, metavar="F", help="the JSON answer")
    parser.add_argument("--out-csv", type=Path, metavar="F",
                        help="AVA CSV rows: video_id,timestamp,x1,y1,x2,y2,action_id,score"
                             "[,person_id]")
    parser.add_argument("--out-video", type=Path, metavar="F.mp4",
                        help="annotated video: boxes and ids per track, top actions")
    parser.add_argument("--boxes", type=Path, metavar="F",
                        help='person boxes JSON ([{"timestamp": s, "boxes": [[x1,y1,x2,y2], '
                             '...]}], normalised); skips the detector')
    parser.add_argument("--min-score", type=float, default=DEFAULT_MIN_SCORE,
                        help=f"smallest action score reported ({DEFAULT_MIN_SCORE})")
    parser.add_argument("--top-k", type=int, default=DEFAULT_TOP_K,
                        help=f"actions reported per person ({DEFAULT_TOP_K})")
    parser.add_argument("--runtime", choices=[k.value for k in RuntimeKind], default=None,
                        help="onnx, torchscript or eager (AIA_RUNTIME; onnx)")
    parser.add_argument("--device", choices=[d.value for d in Device], default=None,
                        help="auto, cpu or cuda (AIA_DEVICE; auto)")
    parser.add_argument("--video-id", default=None, help="video_id in CSV rows (file stem)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="annotated video size = input size x this (e.g. 4 for a 192x128 "
                             "clip, so labels read); 1 keeps the input's size")
    parser.add_argument("--label-actions", type=int, default=3,
                        help="actions written under each box in the video (3)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or messages")


@dataclass
class Built:
    artifact: Artifact
    engine: Engine
    batcher: Batcher


class Progress:
    """tqdm bars over key frames for the detector and the model passes."""

    def __init__(self, keyframes: int, quiet: bool) -> None:
        self.keyframes, self.quiet = keyframes, quiet
        self.bars: dict[str, tqdm] = {}

    def tick(self, name: str, n: int = 1, total: int | None = None,
             unit: str = "key frame") -> None:
        if self.quiet:
            return
        if name not in self.bars:
            self.bars[name] = tqdm(total=total or self.keyframes, desc=name, unit=unit,
                                   file=sys.stderr, leave=True, dynamic_ncols=True)
        self.bars[name].update(n)

    def say(self, text: str) -> None:
        if not self.quiet:
            tqdm.write(f"aia detect: {text}", file=sys.stderr)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()


def counting_detector(detector: Detector, on_call: Callable[[], None]) -> Detector:
    def detect(frame: np.ndarray) -> FrameDetections:
        found = detector(frame)
        on_call()
        return found
    return detect


class ProgressBatcher(Batcher):
    """The service's batcher; ticks a bar per key frame through graph 1 and graph 2."""

    progress: Progress | None = None

    async def features(self, clips: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        out = await super().features(clips, boxes)
        if self.progress is not None:
            self.progress.tick("features", len(clips))  # clips [B,T,h,w,3]: B key frames
        return out

    async def head(self, *inputs: np.ndarray) -> np.ndarray:
        out = await super().head(*inputs)
        if self.progress is not None:
            self.progress.tick("actions", len(inputs[5]))  # memory_mask [B,M]: B key frames
        return out


def build(settings: Settings, progress: Progress, artifact: Artifact | None = None) -> Built:
    """Artifact, runtime, batcher, detector and engine, as the service's lifespan builds
    them (in-process store)."""
    artifact = artifact or load_artifact(settings.model_dir, artifact_formats(settings))
    runtime = load_runtime(artifact, settings.runtime, settings.device)
    model = model_ref(artifact, runtime.name, runtime.device, settings.detector)
    version = model.version
    batcher = ProgressBatcher(runtime, settings.max_batch, settings.max_wait_ms,
                              settings.queue_size)
    batcher.progress = progress
    detector = load_detector(artifact, runtime.device, settings.detector,
                             settings.detector_min_score)
    if detector is not None:
        detector = counting_detector(detector, lambda: progress.tick("detect"))
    store = LocalStore(version, settings.session_ttl_s, settings.session_max_seconds,
                       settings.local_max_sessions)
    engine = build_engine(settings, ServedModel(artifact, model, batcher, detector), store,
                          Metrics(CollectorRegistry()))
    return Built(artifact, engine, batcher)


async def detect(built: Built, video: Path, params: DetectParams,
                 video_id: str) -> DetectResponse:
    try:
        answer = await built.engine.detect(video, params, video_id)
    finally:
        await built.batcher.close()
    return DetectResponse.model_validate_json(answer.body)


def settings_from(args: argparse.Namespace) -> Settings:
    flags = {"model_dir": args.model, "detector": args.detector, "runtime": args.runtime,
             "device": args.device}
    return Settings(**{k: v for k, v in flags.items() if v is not None})


def _params(args: argparse.Namespace, settings: Settings) -> DetectParams:
    if not 0.0 <= args.min_score <= 1.0 or args.top_k < 1:
        raise ValueError("--min-score must lie in [0, 1] and --top-k be at least 1")
    boxes = None
    if args.boxes is not None:
        boxes = parse_boxes(args.boxes.read_text(encoding="utf-8"),
                            CostBounds.from_settings(settings))
    return DetectParams(min_score=args.min_score, top_k=args.top_k, boxes=boxes)


def _summary(response: DetectResponse, seconds: float, frames: int) -> str:
    persons = sum(len(k.persons) for k in response.keyframes)
    ids = {p.person_id for k in response.keyframes for p in k.persons if p.person_id is not None}
    tracks = f", {len(ids)} tracks" if ids else ""
    return (f"{len(response.keyframes)} key frames, {persons} persons{tracks}; "
            f"{frames} frames in {seconds:.1f} s ({frames / max(seconds, 1e-9):.1f} frames/s)")


def describe_model(artifact: Artifact, detector: str | None) -> str:
    """What answers: the action model, what it was trained on, the person detector."""
    data, chosen = artifact.dataset, artifact.choose_detector(detector)
    persons = (f"persons from detector {chosen.name!r} (trained on {chosen.trained_on})"
               if chosen
               else "persons from --boxes only (the artifact has no detector)")
    lines = [f"model {artifact.root.name}: actions trained on {data.name} ({data.label_set}); "
             f"{persons}"]
    if (warning := honesty_warning(artifact)) is not None:
        lines.append(f"aia detect: warning: {warning}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    try:
        settings = settings_from(args)
        params = _params(args, settings)
        artifact = load_artifact(settings.model_dir, artifact_formats(settings))
        # first, and even with --quiet: what the answer can be trusted for
        print(f"aia detect: {describe_model(artifact, settings.detector)}", file=sys.stderr)
        meta = probe_video(args.video, Limits.from_settings(settings))
        progress = Progress(len(keyframe_times(meta.duration_s, settings.keyframe_rate))
                            if params.boxes is None else len(params.boxes), args.quiet)
        progress.say(f"{args.video.name}: {meta.width}x{meta.height}, {meta.frames} frames, "
                     f"{meta.duration_s:.1f} s; loading {settings.model_dir}")
        built = build(settings, progress, artifact)
        video_id = args.video_id or args.video.stem
        progress.say("decoding, detecting, tracking and scoring")
        response = asyncio.run(detect(built, args.video, params, video_id))
        progress.close()
    except (ArtifactError, ServiceError, OSError, ValueError) as err:
        print(f"aia detect: {err}", file=sys.stderr)
        return 2
    if args.out_json:
        args.out_json.parent.mkdir(parents=True, exist_ok=True)
        args.out_json.write_text(response.model_dump_json(indent=1) + "\n", encoding="utf-8")
    if args.out_csv:
        args.out_csv.parent.mkdir(parents=True, exist_ok=True)
        args.out_csv.write_bytes(to_csv(response, video_id))
    frames = meta.frames
    if args.out_video:
        progress.say(f"writing {args.out_video}")
        frames = annotate_video(args.video, response, args.out_video,
                                Style(scale=args.scale, actions=args.label_actions),
                                on_frame=lambda: progress.tick("video", total=meta.frames,
                                                              unit="frame"))
        progress.close()
    if not (args.out_json or args.out_csv or args.out_video):
        print(response.model_dump_json(indent=1))
    progress.say(_summary(response, time.perf_counter() - started, frames))
    return 0
