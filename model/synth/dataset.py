"""One synthetic dataset directory, in the layout the loader reads (model/data/layout.py):

```
DIR/dataset.json                      format, fps, codec, label files, splits, generator info
DIR/labels.pbtxt, DIR/labels.csv      label map; id,name,group,evaluated,decided_by
DIR/videos/<video_id>.mp4
DIR/annotations/{train,val}.csv       video_id,timestamp,x1,y1,x2,y2,action_id,person_id
DIR/annotations/{train,val}_excluded.csv
DIR/boxes/{train,val}_persons.csv     detector-style person boxes with scores
DIR/boxes/{train,val}_objects.csv     detector-style object boxes: category id, score
```
Video i draws everything from SeedSequence([seed, i]), so a video does not depend on how many
others are made, in which order, or by how many worker processes.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from model.data.ava_files import Row, write_exclusions, write_label_map, write_rows
from model.data.layout import DATASET_FILE, FORMAT
from model.synth.annotate import annotation_rows, detection_rows
from model.synth.classes import CLASSES, OBJECT_CATEGORIES
from model.synth.raster import Painter, background, render_frame
from model.synth.scene import KEY_MARGIN, MIN_SECONDS, Scene, sample_scene
from model.synth.video import choose_codec, write_video

# 2: lighting no longer wraps bright colours (raster._light); 3: the lamp family (a flash
# labelled at its own second), temporal ids move to 17-20; the rendered scenes are version 2's
GENERATOR_VERSION = 3
SCENES_SINCE = 2  # the oldest version whose videos and boxes this code renders identically
MIN_HEIGHT = 48
WRITTEN = ("dataset.json", "labels.pbtxt", "labels.csv", "annotations", "boxes", "videos")


class SynthError(ValueError):
    """Settings `aia synth` cannot make a dataset with."""


@dataclass(frozen=True)
class SynthSpec:
    out: Path
    videos: int = 10
    seconds: int = 30
    seed: int = 0
    width: int = 192
    height: int = 128
    fps: float = 25.0
    split_val: float = 0.2
    codec: str = "auto"  # auto | h264 | mpeg4

    def check(self) -> None:
        if self.videos < 1:
            raise SynthError(f"--videos {self.videos}: need at least 1")
        if self.seconds < MIN_SECONDS:
            raise SynthError(f"--seconds {self.seconds}: need at least {MIN_SECONDS} "
                             "(key frames start 2 s in and end 2 s before the end)")
        if self.width % 2 or self.height % 2 or self.height < MIN_HEIGHT:
            raise SynthError(f"--size {self.width}x{self.height}: width and height must be even "
                             f"(YUV 4:2:0) and height at least {MIN_HEIGHT}")
        if self.width < self.height:
            raise SynthError(f"--size {self.width}x{self.height}: scenes are laid out in rows; "
                             "use a landscape size (width >= height)")
        if not self.fps > 0:
            raise SynthError(f"--fps {self.fps}: must be > 0")
        if not 0.0 <= self.split_val < 1.0:
            raise SynthError(f"--split-val {self.split_val}: must be in [0, 1)")


@dataclass(frozen=True)
class VideoResult:
    video_id: str
    frames: int
    annotations: list[Row]
    persons: list[Row]
    objects: list[Row]
    excluded: list[tuple[str, int]]


def video_id(index: int) -> str:
    return f"synth_{index:04d}"


def make_scene(spec: SynthSpec, index: int) -> Scene:
    seed = np.random.SeedSequence([spec.seed, index]).spawn(2)[0]
    return sample_scene(video_id(index), seed, spec.width, spec.height, spec.fps, spec.seconds)


def render_video(scene: Scene) -> Iterator[np.ndarray]:
    world, painter = background(scene), Painter()
    for index in range(scene.frames):
        yield render_frame(scene, index, world, painter)


def make_video(spec: SynthSpec, index: int, codec: str) -> VideoResult:
    """Render, encode and label video `index` (runs in a worker process)."""
    scene = make_scene(spec, index)
    detector_seed = np.random.SeedSequence([spec.seed, index]).spawn(2)[1]
    path = spec.out / "videos" / f"{scene.video_id}.mp4"
    frames = write_video(path, render_video(scene), spec.fps, codec, spec.width, spec.height)
    persons, objects = detection_rows(scene, detector_seed)
    excluded = [(scene.video_id, t) for t in scene.glitches]
    return VideoResult(scene.video_id, frames, annotation_rows(scene), persons, objects,
                       excluded)


def split_of(spec: SynthSpec) -> dict[int, str]:
    """Video index -> split; round(split_val * videos) videos (at least 1 when split_val > 0
    and there are 2 or more) go to val, chosen by the seed."""
    count = round(spec.split_val * spec.videos)
    if spec.split_val > 0 and spec.videos >= 2:
        count = min(max(count, 1), spec.videos - 1)
    order = np.random.default_rng(np.random.SeedSequence([spec.seed, 2**31])).permutation(
        spec.videos)
    val = {int(i) for i in order[:count]}
    return {i: "val" if i in val else "train" for i in range(spec.videos)}


def _split_files(split: str) -> dict[str, str]:
    return {"annotations": f"annotations/{split}.csv",
            "exclusions": f"annotations/{split}_excluded.csv",
            "person_boxes": f"boxes/{split}_persons.csv",
            "object_boxes": f"boxes/{split}_objects.csv"}


def _label_table() -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "name", "group", "evaluated", "decided_by"])
    for c in CLASSES:
        writer.writerow([c.id, c.name, c.family.value, 1, c.decided_by])
    return out.getvalue()


def _write_split(out: Path, split: str, results: list[VideoResult]) -> Counter[int]:
    files = _split_files(split)
    rows = [r for v in results for r in v.annotations]
    write_rows(out / files["annotations"], rows, "person_id")
    write_exclusions(out / files["exclusions"], [k for v in results for k in v.excluded])
    write_rows(out / files["person_boxes"], [r for v in results for r in v.persons], "score")
    write_rows(out / files["object_boxes"], [r for v in results for r in v.objects], "score")
    return Counter(r.action_id for r in rows if r.action_id is not None)


def _run_videos(spec: SynthSpec, codec: str, workers: int,
                progress: bool) -> list[VideoResult]:
    total = spec.videos * round(spec.seconds * spec.fps)
    bar = tqdm(total=total, unit="frame", desc="aia synth", file=sys.stderr,
               disable=not progress, smoothing=0.1)
    results: list[VideoResult] = []
    with bar:
        if workers <= 1:
            for i in range(spec.videos):
                results.append(make_video(spec, i, codec))
                bar.update(results[-1].frames)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                jobs = [pool.submit(make_video, spec, i, codec) for i in range(spec.videos)]
                for job in jobs:  # in order: results do not depend on timing
                    results.append(job.result())
                    bar.update(results[-1].frames)
    return results


def clear_outputs(out: Path) -> None:
    """Remove what a previous run wrote (only the paths this module writes)."""
    for name in WRITTEN:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def write_dataset(spec: SynthSpec, workers: int = 1, progress: bool = True) -> dict[str, object]:
    """Render and write the dataset; returns the `synth` block written to dataset.json."""
    spec.check()
    codec = choose_codec(spec.codec)
    spec.out.mkdir(parents=True, exist_ok=True)
    results = _run_videos(spec, codec, max(1, min(workers, spec.videos)), progress)
    splits = split_of(spec)
    counts: dict[str, dict[str, int]] = {}
    for split in ("train", "val"):
        chosen = [r for i, r in enumerate(results) if splits[i] == split]
        if chosen or split == "train":
            found = _write_split(spec.out, split, chosen)
            counts[split] = {str(c.id): found.get(c.id, 0) for c in CLASSES}
    write_label_map(spec.out / "labels.pbtxt", {c.id: c.name for c in CLASSES})
    (spec.out / "labels.csv").write_text(_label_table(), encoding="utf-8")
    info: dict[str, object] = {
        "generator": "aia synth", "version": GENERATOR_VERSION, "seed": spec.seed,
        "videos": spec.videos, "seconds": spec.seconds, "size": [spec.width, spec.height],
        "key_seconds": [KEY_MARGIN, spec.seconds - KEY_MARGIN], "label_counts": counts,
        "split_of": {video_id(i): s for i, s in splits.items()},
    }
    dataset = {
        "format": FORMAT, "fps": spec.fps, "codec": codec, "label_map": "labels.pbtxt",
        "label_table": "labels.csv",
        "object_categories": {str(k): v for k, v in OBJECT_CATEGORIES.items()},
        "videos": "videos", "splits": {s: _split_files(s) for s in counts}, "synth": info,
    }
    tmp = spec.out / f".{DATASET_FILE}.tmp"
    tmp.write_text(json.dumps(dataset, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, spec.out / DATASET_FILE)
    return info
