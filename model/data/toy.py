"""A small AVA-format dataset directory for the loader's tests and benchmark.

Real mp4s (PyAV, H.264) of static coloured boxes: persons red, objects green, and a strip of
eight black/white bars across the top quarter that spells the frame number in binary, so a
test can read back which source frame each decoded frame came from. The synthetic benchmark
proper is `model/synth`; this writes only what exercising the loader needs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from model.data.ava_files import Row, write_exclusions, write_label_map, write_rows
from model.data.layout import FORMAT

PERSON_RGB = (230, 20, 20)
OBJECT_RGB = (20, 230, 20)
BITS = 8


@dataclass(frozen=True)
class ToyVideo:
    video_id: str
    seconds: int  # length; every second 0..seconds-1 is an annotated key frame
    fps: float = 25.0
    width: int = 64
    height: int = 48
    persons: int = 2  # persons per key frame (at most 3)
    detection_score: float = 0.9  # detector score of each true person
    crf: int = 0  # x264 quality; 0 is lossless
    gop: int = 25


def person_box(p: int) -> tuple[float, float, float, float]:
    x1 = 0.05 + 0.3 * p
    return (x1, 0.35, x1 + 0.25, 0.95)


def object_box(p: int) -> tuple[float, float, float, float]:
    x1 = person_box(p)[0]
    return (x1, 0.35, x1 + 0.1, 0.5)


def actions(p: int, second: int, num_classes: int) -> tuple[int, ...]:
    first = (p + second) % num_classes + 1
    return (first,) if p % 2 else (first, (p + second + 1) % num_classes + 1)


def frame_number(image: np.ndarray) -> int:
    """Read back the frame number drawn by `draw_frame` (any size, not flipped)."""
    height, width = image.shape[:2]
    centres = ((np.arange(BITS) + 0.5) * width / BITS).astype(int)
    bars = image[height // 8, centres].mean(axis=1) > 127
    return int(sum(1 << b for b in range(BITS) if bars[b]))


def draw_frame(index: int, video: ToyVideo) -> np.ndarray:
    w, h = video.width, video.height
    image = np.full((h, w, 3), 60, np.uint8)
    bar = w // BITS
    for b in range(BITS):
        image[: h // 4, b * bar:(b + 1) * bar] = 255 if (index >> b) & 1 else 0
    for p in range(video.persons):
        for box, rgb in ((person_box(p), PERSON_RGB), (object_box(p), OBJECT_RGB)):
            x1, y1, x2, y2 = (round(v * s) for v, s in zip(box, (w, h, w, h), strict=True))
            image[y1:y2, x1:x2] = rgb
    return image


def write_video(path: Path, frames: Iterable[np.ndarray], fps: float, crf: int = 0,
                gop: int = 25) -> None:
    """RGB uint8 frames -> H.264 mp4 (yuv420p: even width and height)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.pix_fmt = "yuv420p"
        stream.gop_size = gop
        stream.options = {"crf": str(crf)}
        for i, image in enumerate(frames):
            if i == 0:
                stream.height, stream.width = image.shape[:2]
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def _rows(video: ToyVideo, num_classes: int) -> tuple[list[Row], list[Row], list[Row]]:
    truth, persons, objects = [], [], []
    for second in range(video.seconds):
        for p in range(video.persons):
            box = person_box(p)
            for action in actions(p, second, num_classes):
                truth.append(Row(video.video_id, second, box, action, float(p)))
            persons.append(Row(video.video_id, second, box, None, video.detection_score))
            objects.append(Row(video.video_id, second, object_box(p), p % 2 + 1,
                               round(0.95 - 0.1 * p, 2)))
        # a low-score false detection everywhere: the threshold must drop it
        persons.append(Row(video.video_id, second, (0.0, 0.0, 0.2, 0.2), None, 0.3))
    return truth, persons, objects


def write_toy_dataset(root: Path, videos: Sequence[ToyVideo], num_classes: int = 4,
                      excluded: Iterable[tuple[str, int]] = ()) -> Path:
    """Videos, CSVs and dataset.json under `root`; splits train and val share the files."""
    for video in videos:
        write_video(root / "videos" / f"{video.video_id}.mp4",
                    (draw_frame(i, video) for i in range(round(video.seconds * video.fps))),
                    video.fps, video.crf, video.gop)
    truth, persons, objects = [], [], []
    for video in videos:
        t, p, o = _rows(video, num_classes)
        truth += t
        persons += p
        objects += o
    write_rows(root / "annotations" / "train.csv", truth, "person_id")
    write_exclusions(root / "annotations" / "train_excluded.csv", excluded)
    write_rows(root / "boxes" / "train_persons.csv", persons, "score")
    write_rows(root / "boxes" / "train_objects.csv", objects, "score")
    write_label_map(root / "labels.pbtxt", {i: f"action {i}" for i in range(1, num_classes + 1)})
    files = {"annotations": "annotations/train.csv",
             "exclusions": "annotations/train_excluded.csv",
             "person_boxes": "boxes/train_persons.csv",
             "object_boxes": "boxes/train_objects.csv"}
    spec = {"format": FORMAT, "fps": 25.0, "label_map": "labels.pbtxt",
            "object_categories": {"1": "ball", "2": "cup"}, "videos": "videos",
            "splits": {"train": files, "val": files}}
    (root / "dataset.json").write_text(json.dumps(spec, indent=2) + "\n")
    return root
