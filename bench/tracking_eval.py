"""Tracking on held-out synthetic videos: ID switches per 100 person-seconds and the share of
key frames where every annotated person is found and keeps its id.

    .venv/bin/python bench/tracking_eval.py --data data/synth --detector runs/detector/detector.pt

Person boxes come from the detector (eager, at its score threshold) or, to separate tracking
from detection, from the ground truth; identities from service/tracking.py with no appearance
features (box motion only), with colour-histogram features of the box crop (a cheap stand-in),
and, with --artifact, with the action model's person RoI features (graph 1 of the artifact).
Ground-truth ids are the annotations' person ids (rebuilt exactly from the generator).
Writes bench/results/tracking.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from model.detector.checkpoint import load_detector
from model.detector.data import decode_frames
from model.detector.evaluate import IOU, iou_matrix
from model.detector.truth import frame_truth, open_synth
from service.tracking import Tracker, TrackerConfig, TrackerState

Features = Callable[[np.ndarray, np.ndarray, str, int], np.ndarray]  # frame, boxes px, video, s


@dataclass
class KeyFrame:
    video_id: str
    second: int
    frame: np.ndarray  # uint8 [H,W,3]
    truth_boxes: np.ndarray  # [P,4] pixels
    truth_ids: np.ndarray  # [P]
    detected: np.ndarray  # [n,4] pixels


def colour_features(frame: np.ndarray, boxes: np.ndarray, *_: object) -> np.ndarray:
    """[n,128]: 4x4x4 RGB histograms of the upper and lower half of each box."""
    out = []
    for x1, y1, x2, y2 in boxes.round().astype(int):
        crop = frame[max(y1, 0):max(y2, y1 + 2), max(x1, 0):max(x2, x1 + 1)]
        halves = (crop[: len(crop) // 2], crop[len(crop) // 2:])
        hists = [np.histogramdd(h.reshape(-1, 3), bins=(4, 4, 4), range=[(0, 256)] * 3)[0]
                 .ravel() for h in halves]
        out.append(np.sqrt(np.concatenate(hists) / max(crop.shape[0] * crop.shape[1], 1)))
    return np.asarray(out, np.float32).reshape(len(boxes), 128)


def artifact_features(artifact_dir: Path, data_root: Path) -> Features:
    """Person RoI features from the artifact's features graph on the key frame's window."""
    from exporters.artifact import load_artifact, onnx_session
    from model.data.video import WindowSpec, read_window

    artifact = load_artifact(artifact_dir, ["onnx"])
    session = onnx_session(artifact.path("features", "onnx"))
    spec = WindowSpec.from_input(artifact.config.input)

    def features(frame: np.ndarray, boxes: np.ndarray, video_id: str,
                 second: int) -> np.ndarray:
        clip = read_window(data_root / "videos" / f"{video_id}.mp4", second, spec)  # [T,h,w,3]
        scale = clip.shape[2] / frame.shape[1]
        rois = np.concatenate([np.zeros((len(boxes), 1)), boxes * scale], axis=1)  # [n,5]
        (out,) = session.run(None, {"clip": clip[None], "boxes": rois.astype(np.float32)})
        return np.asarray(out, np.float32)

    return features


def collect(data: Path, detector: Path, split: str) -> tuple[list[list[KeyFrame]], float]:
    ds = open_synth(data)
    _, model, _ = load_detector(detector)
    videos, seconds = [], 0.0
    for video_id in ds.videos(split):
        scene = ds.scene(video_id)
        keys = [s for s in scene.key_seconds if s not in scene.glitches]
        frames = decode_frames(str(ds.video_path(video_id)), [scene.key_frame(s) for s in keys],
                               scene.fps)
        rows = []
        for second in keys:
            frame = frames[scene.key_frame(second)]
            truth = frame_truth(scene, scene.key_frame(second))
            started = time.perf_counter()
            with torch.no_grad():
                found = model([torch.from_numpy(frame).permute(2, 0, 1).float() / 255])[0]
            seconds += time.perf_counter() - started
            people = found["boxes"][found["labels"] == 1].numpy()
            rows.append(KeyFrame(video_id, second, frame, truth.persons, truth.person_ids,
                                 people))
        videos.append(rows)
    return videos, seconds / max(sum(len(v) for v in videos), 1)


def score_video(rows: list[KeyFrame], tracker: Tracker, use_truth: bool,
                features: Features | None) -> dict[str, int]:
    state, last_id = TrackerState(), {}  # truth id -> predicted id last matched
    switches = instances = good_frames = 0
    for row in rows:
        boxes = row.truth_boxes if use_truth else row.detected
        height, width = row.frame.shape[:2]
        feats = None if features is None else features(row.frame, boxes, row.video_id,
                                                          row.second)
        norm = boxes / np.array([width, height, width, height])
        state, ids = tracker.update(state, float(row.second), norm, feats)
        iou = iou_matrix(row.truth_boxes, boxes) if len(boxes) and len(row.truth_boxes) else (
            np.zeros((len(row.truth_boxes), len(boxes))))
        t_idx, b_idx = linear_sum_assignment(-iou)
        matched = {int(t): ids[b] for t, b in zip(t_idx, b_idx, strict=True) if iou[t, b] >= IOU}
        instances += len(row.truth_ids)
        ok = len(matched) == len(row.truth_ids)
        for t, pred in matched.items():
            person = int(row.truth_ids[t])
            if person in last_id and last_id[person] != pred:
                switches += 1
                ok = False
            last_id[person] = pred
        good_frames += ok
    return {"switches": switches, "person_seconds": instances, "frames": len(rows),
            "good_frames": good_frames}


def evaluate(videos: list[list[KeyFrame]], tracker: Tracker, use_truth: bool,
             features: Features | None) -> dict[str, float]:
    totals = {"switches": 0, "person_seconds": 0, "frames": 0, "good_frames": 0}
    for rows in videos:
        for key, value in score_video(rows, tracker, use_truth, features).items():
            totals[key] += value
    return {**totals,
            "id_switches_per_100_person_seconds":
                round(100 * totals["switches"] / max(totals["person_seconds"], 1), 3),
            "key_frames_all_ids_kept": round(totals["good_frames"] / max(totals["frames"], 1),
                                             4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/synth"))
    parser.add_argument("--split", default="val")
    parser.add_argument("--detector", type=Path, default=Path("runs/detector/detector.pt"))
    parser.add_argument("--artifact", type=Path, default=None,
                        help="an `aia export` directory: also track with its RoI features")
    parser.add_argument("--max-age", type=float, default=TrackerConfig().max_age_s)
    parser.add_argument("--out", type=Path, default=Path("bench/results/tracking.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    videos, detect_s = collect(args.data, args.detector, args.split)
    tracker = Tracker(TrackerConfig(max_age_s=args.max_age))
    modes: dict[str, Features | None] = {"motion only": None, "colour histogram": colour_features}
    if args.artifact is not None:
        modes["action model RoI features"] = artifact_features(args.artifact, args.data)
    results = {}
    for source in ("detector", "ground truth boxes"):
        for name, features in modes.items():
            found = evaluate(videos, tracker, source != "detector", features)
            results[f"{source} / {name}"] = found
            print(f"{source:>18} / {name:<26} ID switches per 100 person-s "
                  f"{found['id_switches_per_100_person_seconds']:6.2f}   key frames with "
                  f"every id kept {found['key_frames_all_ids_kept']:.3f}")
    report = {"data": str(args.data), "split": args.split, "detector": str(args.detector),
              "artifact": None if args.artifact is None else str(args.artifact),
              "videos": len(videos), "key_frames": sum(len(v) for v in videos),
              "tracker": vars(tracker.config), "detector_ms_per_frame": round(1000 * detect_s, 1),
              "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
