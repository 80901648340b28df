"""Detector scores on exact boxes: person recall / precision and object recall at IoU 0.5."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.models.detection import FasterRCNN
from torchvision.ops import box_iou

from model.detector.config import DetectorConfig
from model.detector.data import Sample

IOU = 0.5


@dataclass(frozen=True)
class Detections:
    boxes: np.ndarray  # [K,4] pixels
    scores: np.ndarray  # [K]
    labels: np.ndarray  # [K] class ids (1 person)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return box_iou(torch.from_numpy(a).float(), torch.from_numpy(b).float()).numpy()


def match(found: np.ndarray, scores: np.ndarray, truth: np.ndarray,
          ignore: np.ndarray | None = None) -> tuple[int, int, int]:
    """Greedy by score at IoU >= 0.5 -> (true positives, false positives, ground truths);
    a detection matching only an `ignore` box counts as neither."""
    order = np.argsort(-scores, kind="stable")
    iou = (iou_matrix(found[order], truth) if len(truth) and len(found)
           else np.zeros((len(found), len(truth))))
    used = np.zeros(len(truth), bool)
    tp = fp = 0
    for row in range(len(order)):
        candidates = np.where(~used & (iou[row] >= IOU))[0]
        if len(candidates):
            used[candidates[np.argmax(iou[row, candidates])]] = True
            tp += 1
        elif ignore is not None and len(ignore) and iou_matrix(found[order][row:row + 1],
                                                          ignore).max() >= IOU:
            continue
        else:
            fp += 1
    return tp, fp, len(truth)


@torch.no_grad()
def detect_all(model: FasterRCNN, samples: list[Sample], min_score: float,
               batch: int = 16) -> list[Detections]:
    model.eval()
    saved = model.roi_heads.score_thresh
    model.roi_heads.score_thresh = min_score
    out: list[Detections] = []
    try:
        for start in range(0, len(samples), batch):
            images = [torch.from_numpy(s.frame).permute(2, 0, 1).float().div(255.0)
                      for s in samples[start:start + batch]]
            for found in model(images):
                out.append(Detections(found["boxes"].numpy(), found["scores"].numpy(),
                                      found["labels"].numpy()))
    finally:
        model.roi_heads.score_thresh = saved
    return out


def score(samples: list[Sample], found: list[Detections], cfg: DetectorConfig,
          threshold: float) -> dict[str, float]:
    person = np.zeros(3, np.int64)  # tp, fp, gt
    objects = np.zeros(3, np.int64)
    objects_any = np.zeros(3, np.int64)  # class-agnostic (box vs ball confusions forgiven)
    for sample, det in zip(samples, found, strict=True):
        keep = det.scores >= threshold
        boxes, scores, labels = det.boxes[keep], det.scores[keep], det.labels[keep]
        t = sample.truth
        is_person = labels == cfg.person_class_id
        person += match(boxes[is_person], scores[is_person], t.persons, t.ignore)
        for category in np.unique(np.concatenate([t.object_categories, labels[~is_person] - 1])):
            mine = labels == category + cfg.person_class_id
            objects += match(boxes[mine], scores[mine], t.objects[t.object_categories == category])
        objects_any += match(boxes[~is_person], scores[~is_person], t.objects)
    return {
        "threshold": threshold,
        "person_recall": float(person[0] / max(person[2], 1)),
        "person_precision": float(person[0] / max(person[0] + person[1], 1)),
        "object_recall": float(objects[0] / max(objects[2], 1)),
        "object_precision": float(objects[0] / max(objects[0] + objects[1], 1)),
        "object_recall_any_class": float(objects_any[0] / max(objects_any[2], 1)),
        "persons": int(person[2]), "objects": int(objects[2]), "frames": len(samples),
    }


def evaluate(model: FasterRCNN, samples: list[Sample], cfg: DetectorConfig,
             thresholds: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)) -> dict[str, object]:
    """Scores at the config's threshold, plus a sweep over `thresholds`."""
    found = detect_all(model, samples, min(min(thresholds), cfg.score_threshold))
    return {"at_threshold": score(samples, found, cfg, cfg.score_threshold),
            "sweep": [score(samples, found, cfg, t) for t in thresholds]}
