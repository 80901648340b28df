"""Offline two-pass validation, as the paper infers on whole videos.

Pass 1 runs graph 1 over every second of a video (detected persons and objects). Pass 2 runs
graph 2 for each annotated key frame with the full memory window (past and future seconds'
person features). Predictions are AVA CSV rows scored by `model.evaluate` (what `aia eval`
runs), overall, per class and per group (family).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from model.config import ModelConfig
from model.data.ava_files import Row, read_exclusions, read_rows, write_rows
from model.data.dataset import AvaDataset
from model.data.offline import iter_video_batches
from model.evaluate import MAX_DETECTIONS_PER_KEYFRAME, EvalResult, evaluate
from model.labels import Label
from model.memory_window import pad
from model.network import AIA
from model.postprocess import action_scores


@dataclass(frozen=True)
class SecondFeatures:
    """What pass 1 keeps of one second of a video."""

    persons: torch.Tensor  # [n,D]
    boxes: torch.Tensor  # [n,4] normalised, as the detector gave them
    objects: torch.Tensor  # [k,D], highest score first


@dataclass(frozen=True)
class Validation:
    result: EvalResult
    group_map: dict[str, float]  # mean AP per group (family)
    predictions: Path | None


@torch.no_grad()
def extract_video(model: AIA, dataset: AvaDataset, video_id: str, batch_size: int,
                  device: torch.device) -> dict[int, SecondFeatures]:
    """Pass 1: graph 1 over every second of the video."""
    out: dict[int, SecondFeatures] = {}
    for batch in iter_video_batches(dataset, video_id, batch_size):
        batch = batch.to(device)
        n = batch.person_boxes.shape[0]
        feats = model.features(batch.clip, torch.cat([batch.person_boxes, batch.object_boxes]))
        persons, objects = feats[:n].float().cpu(), feats[n:].float().cpu()
        person_clip = batch.person_batch.cpu()
        object_clip = batch.object_boxes[:, 0].long().cpu()
        for i, meta in enumerate(batch.clips):
            out[meta.timestamp] = SecondFeatures(persons[person_clip == i],
                                                 batch.person_boxes_norm[person_clip == i].cpu(),
                                                 objects[object_clip == i])
    return out


@torch.no_grad()
def predict_video(model: AIA, cfg: ModelConfig, video_id: str, key_frames: list[int],
                  seconds: Mapping[int, SecondFeatures], device: torch.device) -> list[Row]:
    """Pass 2: graph 2 at each key frame with its whole memory window -> AVA rows."""
    rows: list[Row] = []
    for t in key_frames:
        entry = seconds.get(t)
        if entry is None or len(entry.persons) == 0:
            continue
        n, objects = len(entry.persons), entry.objects[: cfg.ia.max_objects]
        persons = {s: e.persons.numpy() for s, e in seconds.items()}
        window = cfg.ia.window.gather(persons, t, cfg.feature_dim)
        memory = [torch.from_numpy(x).to(device) for x in pad([window], cfg.feature_dim)]
        logits = model.head(entry.persons.to(device), torch.zeros(n, dtype=torch.long,
                                                                   device=device),
                            objects.unsqueeze(0).to(device),
                            torch.ones(1, len(objects), dtype=torch.bool, device=device),
                            *memory)
        scores = action_scores(logits.float().cpu().numpy(), cfg.classifier.groups)
        for box, person_scores in zip(entry.boxes.tolist(), scores, strict=True):
            for a, score in enumerate(person_scores.tolist()):
                rows.append(Row(video_id, t, tuple(box), a + 1, score))
    return rows


def validate(model: AIA, cfg: ModelConfig, dataset: AvaDataset, labels: tuple[Label, ...],
             batch_size: int, device: torch.device, out_csv: Path | None = None,
             max_videos: int | None = None) -> Validation:
    was_training = model.training
    model.eval()
    videos = sorted({video for video, _ in dataset.keys})[:max_videos]
    pred: list[Row] = []
    for video_id in tqdm(videos, desc="validate", leave=False):
        seconds = extract_video(model, dataset, video_id, batch_size, device)
        key_frames = sorted(t for v, t in dataset.keys if v == video_id)
        pred += predict_video(model, cfg, video_id, key_frames, seconds, device)
    model.train(was_training)
    result, group_map = score_rows(dataset, labels, videos, pred)
    if out_csv is not None:
        write_rows(out_csv, pred, "score")
    return Validation(result, group_map, out_csv)


def score_rows(dataset: AvaDataset, labels: tuple[Label, ...], videos: list[str],
               pred: list[Row], max_per_keyframe: int | None = MAX_DETECTIONS_PER_KEYFRAME
               ) -> tuple[EvalResult, dict[str, float]]:
    """Prediction rows of `videos` against the split's annotations and exclusions, over the
    evaluated labels: the result and its mean AP per group."""
    files = dataset.layout.split(dataset.split)
    chosen = set(videos)
    gt = [r for r in read_rows(files.annotations, "person_id") if r.video_id in chosen]
    evaluated = {label.id: label.name for label in labels if label.evaluated}
    exclusions = read_exclusions(files.exclusions) if files.exclusions else set()
    result = evaluate(gt, pred, evaluated, exclusions, max_per_keyframe)
    return result, result.group_means({lb.id: lb.group for lb in labels})
