"""Frames and exact targets of a synthetic dataset for detector training and scoring."""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from model.data.video import VideoError, to_rgb
from model.detector.config import DetectorConfig
from model.detector.truth import (
    FrameTruth,
    SynthDataset,
    frame_truth,
    glitched,
)


@dataclass(frozen=True)
class Sample:
    frame: np.ndarray  # uint8 [H,W,3] RGB
    truth: FrameTruth


def decode_frames(path: str, indices: list[int], fps: float) -> dict[int, np.ndarray]:
    """Frame index -> uint8 [H,W,3] RGB for the wanted indices (one pass through the file)."""
    wanted, found = set(indices), {}
    reformatter = VideoReformatter()
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                index = round((frame.time or 0.0) * fps)
                if index in wanted:
                    found[index] = to_rgb(frame, frame.width, frame.height, reformatter)
                if index >= max(wanted):
                    break
    except av.FFmpegError as err:
        raise VideoError(f"{path}: cannot decode ({err})") from err
    missing = sorted(wanted - set(found))
    if missing:
        raise VideoError(f"{path}: frames {missing[:5]} not found (video shorter than labels?)")
    return found


def frame_indices(ds: SynthDataset, video_id: str, per_second: int) -> list[int]:
    """Key frames (per_second=1) or key seconds plus evenly spaced frames between them;
    frames near a glitch are left out, as the excluded timestamps are."""
    scene = ds.scene(video_id)
    seconds = scene.key_seconds
    times = [s + j / per_second for s in seconds for j in range(per_second)]
    times = [t for t in times if t <= seconds[-1]]
    indices = [round(t * scene.fps) for t in times]
    return [i for i in indices if not glitched(scene, i)]


def load_samples(ds: SynthDataset, split: str, per_second: int = 1,
                 min_visible: float | None = None) -> list[Sample]:
    """Decoded frames with exact boxes; `min_visible` None: annotated persons only."""
    samples = []
    for video_id in ds.videos(split):
        scene = ds.scene(video_id)
        indices = frame_indices(ds, video_id, per_second)
        frames = decode_frames(str(ds.video_path(video_id)), indices, scene.fps)
        for index in indices:
            truth = (frame_truth(scene, index) if min_visible is None
                     else frame_truth(scene, index, min_visible))
            samples.append(Sample(frames[index], truth))
    return samples


def training_target(truth: FrameTruth, cfg: DetectorConfig) -> dict[str, torch.Tensor]:
    """torchvision target: boxes [n,4] pixels, labels [n] (1 person, 1 + category others)."""
    boxes = np.concatenate([truth.persons, truth.objects])  # [P+O,4]
    labels = np.concatenate([np.full(len(truth.persons), cfg.person_class_id),
                             truth.object_categories + cfg.person_class_id])
    keep = (boxes[:, 2] - boxes[:, 0] >= 1.0) & (boxes[:, 3] - boxes[:, 1] >= 1.0)
    return {"boxes": torch.from_numpy(boxes[keep]).float(),
            "labels": torch.from_numpy(labels[keep]).long()}


def augment(frame: np.ndarray, target: dict[str, torch.Tensor],
            rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Random horizontal flip and brightness/contrast -> float [3,H,W] in [0,1], target."""
    image = torch.from_numpy(frame).permute(2, 0, 1).float().div(255.0)  # [3,H,W]
    boxes = target["boxes"].clone()
    if rng.random() < 0.5:
        image = image.flip(-1)
        width = image.shape[-1]
        boxes = torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0],
                             boxes[:, 3]], dim=1)
    gain, shift = float(rng.uniform(0.75, 1.25)), float(rng.uniform(-0.08, 0.08))
    image = (image * gain + shift).clamp(0.0, 1.0)
    return image, {"boxes": boxes, "labels": target["labels"]}
