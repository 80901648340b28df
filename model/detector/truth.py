"""Exact boxes of a synthetic dataset's frames, rebuilt from the generator's scene state.

`aia synth` draws video i from SeedSequence([seed, i]) alone, so the scenes can be sampled
again from dataset.json's `synth` block; the boxes in boxes/*.csv are jittered on purpose
(they imitate a detector) and cannot train or judge one. Person boxes follow
model/synth/annotate.py (`key_people`) at any frame time; walkers partly out of the frame
(less than MIN_VISIBLE inside) are not annotated, so they are `ignore` boxes for scoring.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.synth.annotate import MIN_VISIBLE
from model.synth.body import Box, object_shapes, station_shapes, walker_shapes
from model.synth.dataset import GENERATOR_VERSION, SCENES_SINCE, SynthSpec, make_scene
from model.synth.raster import GLITCH_HALF
from model.synth.scene import FOOT_HALF, Scene, camera_offset

MIN_TRAIN_VISIBLE = 0.3  # persons at least this much in the frame are training targets


class TruthError(ValueError):
    """A dataset whose scenes cannot be rebuilt (not from `aia synth`, other version)."""


@dataclass(frozen=True)
class FrameTruth:
    """Exact boxes of one frame, in pixels: [n,4] x1,y1,x2,y2."""

    video_id: str
    index: int  # frame index (time = index / fps)
    persons: np.ndarray  # [P,4] annotated persons (what recall is measured on)
    person_ids: np.ndarray  # [P] person id of each
    ignore: np.ndarray  # [I,4] persons partly in the frame: neither missed nor false
    objects: np.ndarray  # [O,4]
    object_categories: np.ndarray  # [O] dataset category id (1 box, 2 ball)


def _clip(box: Box, width: int, height: int) -> tuple[Box, float]:
    x1, y1 = min(max(box[0], 0.0), width), min(max(box[1], 0.0), height)
    x2, y2 = min(max(box[2], 0.0), width), min(max(box[3], 0.0), height)
    area = (box[2] - box[0]) * (box[3] - box[1])
    return (x1, y1, x2, y2), ((x2 - x1) * (y2 - y1) / area if area > 0 else 0.0)


def _shift(box: Box, dx: int, dy: int) -> Box:
    return box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy


def _boxes(boxes: list[Box]) -> np.ndarray:
    return np.asarray(boxes, np.float32).reshape(-1, 4)


def frame_truth(scene: Scene, index: int, min_visible: float = MIN_VISIBLE) -> FrameTruth:
    """Persons (stations always, walkers with at least `min_visible` inside) and objects."""
    t = scene.frame_time(index)
    dx, dy = camera_offset(scene, t)
    persons, ids, ignore, objects, categories = [], [], [], [], []
    for st in scene.stations:
        box, _ = _clip(_shift(station_shapes(st, t)[1], dx, dy), scene.width, scene.height)
        persons.append(box)
        ids.append(st.pid)
        _, thing, category = object_shapes(st, t)
        clipped, visible = _clip(_shift(thing, dx, dy), scene.width, scene.height)
        if visible > 0:
            objects.append(clipped)
            categories.append(category)
    for w in scene.walkers:
        if not -2 * FOOT_HALF * w.k < w.x(t) < scene.width + 2 * FOOT_HALF * w.k:
            continue
        box, visible = _clip(_shift(walker_shapes(w, t)[1], dx, dy), scene.width, scene.height)
        if visible >= min_visible:
            persons.append(box)
            ids.append(w.pid)
        elif visible > 0:
            ignore.append(box)
    return FrameTruth(scene.video_id, index, _boxes(persons), np.asarray(ids, np.int64),
                      _boxes(ignore), _boxes(objects), np.asarray(categories, np.int64))


def glitched(scene: Scene, index: int) -> bool:
    """Frames around a glitched key second are broken up (model/synth/raster.py)."""
    t = scene.frame_time(index)
    return any(abs(t - g) <= GLITCH_HALF + 1.0 / scene.fps for g in scene.glitches)


@dataclass(frozen=True)
class SynthDataset:
    root: Path
    spec: SynthSpec
    split_of: dict[str, str]  # video id -> train | val
    object_categories: dict[int, str]

    def videos(self, split: str) -> list[str]:
        return sorted(v for v, s in self.split_of.items() if s == split)

    def scene(self, video_id: str) -> Scene:
        return make_scene(self.spec, int(video_id.rsplit("_", 1)[1]))

    def video_path(self, video_id: str) -> Path:
        return self.root / "videos" / f"{video_id}.mp4"


def open_synth(root: str | Path) -> SynthDataset:
    root = Path(root)
    try:
        data = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise TruthError(f"{root}/dataset.json: cannot read ({err})") from err
    info = data.get("synth")
    if not isinstance(info, dict) or info.get("generator") != "aia synth":
        raise TruthError(f"{root}/dataset.json: not made by `aia synth` (no synth block); "
                         "the detector trains on synthetic data with exact boxes")
    version = info.get("version")
    if not isinstance(version, int) or not SCENES_SINCE <= version <= GENERATOR_VERSION:
        raise TruthError(f"{root}: generator version {version}, this code renders the scenes "
                         f"of versions {SCENES_SINCE}-{GENERATOR_VERSION}; regenerate the data "
                         "with `aia synth`")
    width, height = info["size"]
    spec = SynthSpec(out=root, videos=int(info["videos"]), seconds=int(info["seconds"]),
                     seed=int(info["seed"]), width=int(width), height=int(height),
                     fps=float(data["fps"]))
    categories = {int(k): str(v) for k, v in data.get("object_categories", {}).items()}
    return SynthDataset(root, spec, dict(info["split_of"]), categories)
