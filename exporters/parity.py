"""Parity of the exported graphs with the eager model, end to end.

Each case runs the whole service path on one runner: graph 1 on the clip for persons, objects
and the memory's boxes, objects padded per clip, then graph 2 on those features. The eager
fp32 model is the reference; each exported format (reloaded from disk) must stay within the
dtype's bound on the logits and pick the same top label for every person.

Cases: random clips and clips decoded from an mp4 written here with PyAV, with 0, 1 and many
persons (beyond `max_persons` / `max_objects`), empty memory (no slot at all), full memory
(every neighbour second) and partly masked memory, at frame sizes other than the export's
example, so a shape frozen into a graph fails.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm import tqdm

from exporters.artifact import InputSpec
from exporters.graphs import Dtype, ExportError
from model.boxes import enlarge_boxes
from model.config import ModelConfig
from model.data.toy import ToyVideo, draw_frame, object_box, person_box, write_video
from model.data.video import WindowSpec, read_window

FP32_TOLERANCE = 1e-4
# fp16 rounds every activation to 11 significant bits. Measured on the tiny and r50 presets
# with unit-scale random weights (ONNX Runtime and TorchScript, CPU): max |logit diff| up to
# 0.2% of max |logit|; the bound leaves 10x of room for trained weights.
FP16_RELATIVE = 2e-2


def tolerance(dtype: Dtype, logits_scale: float) -> float:
    """The documented bound: 1e-4 absolute in fp32; in fp16 2% of max(1, max |logit|)."""
    if dtype is Dtype.FP32:
        return FP32_TOLERANCE
    return FP16_RELATIVE * max(1.0, logits_scale)


@dataclass(frozen=True)
class Case:
    name: str
    clip: np.ndarray  # uint8 [B,T,H,W,3]
    persons: np.ndarray  # [N,5] float32: clip index, x1, y1, x2, y2 in pixels
    objects: np.ndarray  # [K,5], a clip's objects in score order
    memory_boxes: np.ndarray  # [B*M,5]: one box per memory slot, clip-major
    memory_mask: np.ndarray  # [B,M] bool
    memory_seconds: np.ndarray  # [B,M] int64


class Runner(Protocol):
    def features(self, clip: np.ndarray, boxes: np.ndarray) -> np.ndarray: ...

    def head(self, *inputs: np.ndarray) -> np.ndarray: ...


class TorchRunner:
    """Eager modules or reloaded TorchScript: the same calling convention."""

    def __init__(self, features: Any, head: Any) -> None:
        self._features, self._head = features, head

    def features(self, clip: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self._features(torch.from_numpy(clip), torch.from_numpy(boxes)).numpy()

    def head(self, *inputs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self._head(*(torch.from_numpy(x) for x in inputs)).numpy()


class OnnxRunner:
    def __init__(self, features: Any, head: Any) -> None:
        self._features, self._head = features, head

    def features(self, clip: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        return self._features.run(None, {"clip": clip, "boxes": boxes})[0]

    def head(self, *inputs: np.ndarray) -> np.ndarray:
        names = [i.name for i in self._head.get_inputs()]
        return self._head.run(None, dict(zip(names, inputs, strict=True)))[0]


def pad_objects(feats: np.ndarray, batch: np.ndarray, clips: int,
                cap: int) -> tuple[np.ndarray, np.ndarray]:
    """[K,D] + clip index [K] -> [B,O,D] + mask [B,O], the first `cap` objects of each clip."""
    counts = np.bincount(batch, minlength=clips)
    width = min(int(counts.max(initial=0)), cap)
    padded = np.zeros((clips, width, feats.shape[1]), np.float32)
    mask = np.zeros((clips, width), bool)
    seen = np.zeros(clips, int)
    for row, clip in enumerate(batch):
        if seen[clip] < width:
            padded[clip, seen[clip]], mask[clip, seen[clip]] = feats[row], True
        seen[clip] += 1
    return padded, mask


def run_case(runner: Runner, case: Case, max_objects: int) -> tuple[np.ndarray, np.ndarray]:
    """The service path -> (roi features [N+K+B*M,D], logits [N,A])."""
    n, k = len(case.persons), len(case.objects)
    b, m = case.memory_mask.shape
    boxes = np.concatenate([case.persons, case.objects, case.memory_boxes]).astype(np.float32)
    feats = runner.features(case.clip, boxes)
    memory = feats[n + k:].reshape(b, m, feats.shape[1])  # [B*M,D] -> [B,M,D]
    objects, object_mask = pad_objects(feats[n:n + k], case.objects[:, 0].astype(np.int64),
                                       b, max_objects)
    logits = runner.head(feats[:n], case.persons[:, 0].astype(np.int64), objects, object_mask,
                         np.ascontiguousarray(memory), case.memory_mask, case.memory_seconds)
    return feats, logits


# ---------------------------------------------------------------------------------------------
# cases


def random_boxes(rng: np.random.Generator, counts: Sequence[int], width: int,
                 height: int) -> np.ndarray:
    """counts[b] boxes inside clip b -> [sum(counts),5]."""
    clip = np.repeat(np.arange(len(counts)), counts)
    w = rng.uniform(0.1, 0.5, len(clip)) * width
    h = rng.uniform(0.2, 0.8, len(clip)) * height
    x1, y1 = rng.uniform(0, width - w), rng.uniform(0, height - h)
    return np.stack([clip, x1, y1, x1 + w, y1 + h], axis=1).astype(np.float32)


def memory_layout(spec: InputSpec, fills: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Per clip, the first fills[b] of the window's neighbour slots hold a feature.
    All fills 0: no slot at all (M = 0), the empty memory of a first key frame."""
    seconds = spec.window.slot_seconds()
    m = len(seconds) if any(fills) else 0
    mask = np.arange(m)[None] < np.round(np.asarray(fills) * m)[:, None]  # [B,M]
    return mask, np.broadcast_to(seconds[:m], (len(fills), m)).astype(np.int64).copy()


def make_case(name: str, clip: np.ndarray, persons: np.ndarray, objects: np.ndarray,
              fills: Sequence[float], spec: InputSpec, rng: np.random.Generator) -> Case:
    height, width = clip.shape[2:4]
    mask, seconds = memory_layout(spec, fills)
    memory_boxes = random_boxes(rng, [mask.shape[1]] * len(fills), width, height)
    return Case(name, clip, persons, objects, memory_boxes, mask, seconds)


def random_cases(spec: InputSpec, short: int, long: int, seed: int = 0) -> list[Case]:
    rng = np.random.default_rng(seed)
    big_p, big_o = spec.max_persons + 2, spec.max_objects + 1
    layouts = [  # (name, frame h x w, persons, objects, memory fill per clip)
        ("random: 0 persons, full memory", (short, long), [0], [2], [1.0]),
        ("random: 1 person, empty memory", (long, short), [1], [0], [0.0]),
        ("random: many persons, full + half memory", (max(spec.min_side, short - 8), long),
         [big_p, 3],
         [big_o, 0], [1.0, 0.5]),
    ]
    cases = []
    for name, (h, w), persons, objects, fills in layouts:
        clip = rng.integers(0, 256, (len(persons), spec.frames, h, w, 3), dtype=np.uint8)
        cases.append(make_case(name, clip, random_boxes(rng, persons, w, h),
                               random_boxes(rng, objects, w, h), fills, spec, rng))
    return cases


def decoded_clips(spec: InputSpec, short: int, long: int, workdir: Path,
                  seconds: Sequence[int]) -> np.ndarray:
    """Writes a small H.264 mp4 (the loader's toy scene: 3 persons with objects, a frame
    counter) and decodes windows at `seconds` the way the data loader does -> [B,T,h,w,3]."""
    video = ToyVideo("parity", max(seconds) + math.ceil(spec.frames / spec.fps) + 1, spec.fps,
                     width=320, height=240, persons=3, crf=18)
    path = workdir / "parity.mp4"
    write_video(path, (draw_frame(i, video) for i in range(round(video.seconds * video.fps))),
                video.fps, video.crf, video.gop)
    window = WindowSpec(spec.frames, spec.fps, short, long)
    return np.stack([read_window(path, s, window) for s in seconds])


def toy_boxes(counts: Sequence[int], which: str, width: int, height: int,
              enlarge: tuple[float, float]) -> np.ndarray:
    """The toy scene's person (enlarged as at test time) or object boxes in pixels."""
    rows = []
    for clip, count in enumerate(counts):
        for p in range(count):
            box = person_box(p) if which == "person" else object_box(p)
            rows.append([clip, *(v * s for v, s in zip(box, (width, height) * 2, strict=True))])
    boxes = torch.tensor(rows, dtype=torch.float32).reshape(-1, 5)
    if which == "person":
        boxes[:, 1:] = torch.from_numpy(enlarge_boxes(boxes[:, 1:].numpy(), enlarge, width, height))
    return boxes.numpy()


def decoded_cases(spec: InputSpec, short: int, long: int, workdir: Path,
                  seed: int = 1) -> list[Case]:
    rng = np.random.default_rng(seed)
    clips = decoded_clips(spec, short, long, workdir, [1, 2])
    height, width = clips.shape[2:4]
    layouts = [  # (name, clips used, persons, objects, memory fill per clip)
        ("decoded: many persons, full memory", [0, 1], [3, 3], [3, 2], [1.0, 1.0]),
        ("decoded: 1 person, empty memory", [1], [1], [1], [0.0]),
        ("decoded: 0 persons, half memory", [0], [0], [3], [0.5]),
    ]
    cases = []
    for name, used, persons, objects, fills in layouts:
        cases.append(make_case(
            name, clips[used], toy_boxes(persons, "person", width, height, spec.test_box_enlarge),
            toy_boxes(objects, "object", width, height, (0.0, 0.0)), fills, spec, rng))
    return cases


def parity_cases(cfg: ModelConfig, workdir: Path, short_side: int | None = None) -> list[Case]:
    """All cases at short side `short_side` (default: the config's), long side scaled alike."""
    spec = InputSpec.from_config(cfg)
    short = short_side or spec.short_side
    if not spec.min_side <= short <= spec.short_side:
        raise ExportError(f"parity short side {short}: must be in [{spec.min_side}, "
                         f"{spec.short_side}] (the exported range)")
    # 4:3 frames, as far as the long-side cap (scaled to this short side) allows
    long = max(short, min(round(spec.max_long_side * short / spec.short_side),
                          round(short * 4 / 3)))
    return random_cases(spec, short, long) + decoded_cases(spec, short, long, workdir)


# ---------------------------------------------------------------------------------------------
# comparison


@dataclass(frozen=True)
class CaseResult:
    case: str
    persons: int
    max_abs_logits: float
    max_abs_features: float
    logits_scale: float  # max |reference logit|
    tolerance: float
    top_label_same: int  # persons whose top label matches the reference's
    near_ties: int  # persons excused: reference top-2 margin within 2x the bound (fp16 only)
    top_label_ok: bool  # every person that is not a near tie has the reference's top label

    @property
    def passed(self) -> bool:
        return self.max_abs_logits <= self.tolerance and self.top_label_ok


def compare(case: str, reference: tuple[np.ndarray, np.ndarray],
            got: tuple[np.ndarray, np.ndarray], dtype: Dtype,
            bound: float | None) -> CaseResult:
    (ref_feats, ref_logits), (feats, logits) = reference, got
    n = len(ref_logits)
    scale = float(np.abs(ref_logits).max(initial=0.0))
    tol = tolerance(dtype, scale) if bound is None else bound
    if logits.shape != ref_logits.shape or feats.shape != ref_feats.shape:
        return CaseResult(case, n, math.inf, math.inf, scale, tol, 0, 0, False)
    diff = float(np.abs(logits - ref_logits).max(initial=0.0))
    feat_diff = float(np.abs(feats - ref_feats).max(initial=0.0))
    # fp32 must agree on every person; in fp16 logits closer than 2x the bound may swap
    # legitimately, so those persons are counted, not failed
    floor = 0.0 if dtype is Dtype.FP32 else 2 * tol
    if ref_logits.shape[1] > 1:
        top2 = np.sort(ref_logits, axis=1)[:, -2:]  # [N,2] second best, best
        tie = (top2[:, 1] - top2[:, 0]) <= floor
    else:
        tie = np.zeros(n, bool)
    same = ref_logits.argmax(axis=1) == logits.argmax(axis=1)
    return CaseResult(case, n, diff, feat_diff, scale, tol, int(same.sum()), int(tie.sum()),
                      bool((same | tie).all()))


@dataclass(frozen=True)
class ParityReport:
    dtype: Dtype
    results: dict[str, list[CaseResult]]  # format -> one result per case

    @property
    def passed(self) -> bool:
        return all(r.passed for rs in self.results.values() for r in rs)

    def failures(self) -> list[str]:
        return [f"{fmt} / {r.case}: max |logit diff| {r.max_abs_logits:.3g} (bound "
                f"{r.tolerance:.3g}), same top label {r.top_label_same}/{r.persons} "
                f"({r.near_ties} near ties)"
                for fmt, rs in self.results.items() for r in rs if not r.passed]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "reference": "eager PyTorch, fp32, CPU", "dtype": self.dtype.value,
            "bound": ("max |logit diff| <= 1e-4; top label identical for every person"
                      if self.dtype is Dtype.FP32 else
                      "max |logit diff| <= 0.02 * max(1, max |reference logit|); top label "
                      "identical wherever the reference's top-2 margin exceeds 2x that"),
            "passed": self.passed, "formats": {}}
        for fmt, rs in self.results.items():
            out["formats"][fmt] = {
                "max_abs_logits": max(r.max_abs_logits for r in rs),
                "max_abs_features": max(r.max_abs_features for r in rs),
                "cases": [{**asdict(r), "passed": r.passed} for r in rs]}
        return out


def check(reference: Runner, candidates: dict[str, Runner], cases: Sequence[Case],
          max_objects: int, dtype: Dtype, bound: float | None = None) -> ParityReport:
    """Every candidate against the reference on every case; `bound` overrides the dtype's."""
    results: dict[str, list[CaseResult]] = {fmt: [] for fmt in candidates}
    with tqdm(total=len(cases) * (1 + len(candidates)), desc="parity", unit="run",
              leave=False) as bar:
        for case in cases:
            expected = run_case(reference, case, max_objects)
            bar.update(1)
            for fmt, runner in candidates.items():
                got = run_case(runner, case, max_objects)
                results[fmt].append(compare(case.name, expected, got, dtype, bound))
                bar.update(1)
    return ParityReport(dtype, results)
