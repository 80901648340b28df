"""Detector checkpoint -> detector.onnx plus the manifest's `detector` section.

The graph is `FrameDetector`: one uint8 RGB frame [H,W,3] of any size in, boxes [K,4]
(x1,y1,x2,y2 in that frame's pixels), scores [K] float32 and classes [K] int64 out; resizing,
score threshold and NMS are inside. torch.onnx's dynamo exporter cannot export torchvision's
detection models (data-dependent guards in batched_nms), so the TorchScript-based exporter
(`dynamo=False`) is used. Parity: ONNX Runtime against eager on rendered synthetic frames,
at the graph's own size and at a larger, wider one.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from exporters.artifact import DETECTOR_CONTRACT, file_record, onnx_session
from exporters.graphs import ExportError
from model.detector.checkpoint import load_detector
from model.detector.network import FrameDetector
from model.synth.dataset import SynthSpec, make_scene
from model.synth.raster import Painter, background, render_frame

FILE_NAME = "detector.onnx"
OPSET = 17
BOX_TOLERANCE_PX = 1e-2
SCORE_TOLERANCE = 1e-4
TRAINED_ON = "synthetic-interactions (aia synth key frames; persons, boxes, balls)"


def parity_frames(sizes: tuple[tuple[int, int], ...] = ((192, 128), (320, 180))
                  ) -> list[np.ndarray]:
    """Rendered synthetic frames (uint8 [H,W,3]), one scene per size, two times each."""
    frames = []
    for width, height in sizes:
        spec = SynthSpec(out=Path("."), videos=1, seconds=6, seed=97, width=width,
                         height=height)
        scene = make_scene(spec, 0)
        world, painter = background(scene), Painter()
        frames += [render_frame(scene, scene.key_frame(s), world, painter) for s in (2, 4)]
    return frames


def write_onnx(module: FrameDetector, path: Path) -> None:
    example = torch.zeros(128, 192, 3, dtype=torch.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings on torchvision's size arithmetic
        torch.onnx.export(
            module, (example,), str(path), dynamo=False, opset_version=OPSET,
            input_names=["frame"], output_names=["boxes", "scores", "classes"],
            dynamic_axes={"frame": {0: "height", 1: "width"}, "boxes": {0: "detections"},
                          "scores": {0: "detections"}, "classes": {0: "detections"}})


def write_checked(module: torch.nn.Module, path: Path, frames: list[np.ndarray],
                  check: Callable[..., dict[str, Any]] | None = None
                  ) -> tuple[float, dict[str, Any]]:
    """Export `module` to `path` and compare ONNX Runtime with eager on `frames` (`check`,
    default check_parity); on any failure the file is deleted and ExportError raised.
    Returns (seconds the export took, the parity report)."""
    started = time.perf_counter()
    try:
        write_onnx(module, path)  # type: ignore[arg-type]  # any contract graph
    except Exception as err:  # the TorchScript-based exporter raises many kinds
        path.unlink(missing_ok=True)
        raise ExportError(f"{path}: ONNX export failed: {err}") from err
    seconds = time.perf_counter() - started
    report = (check or check_parity)(module, path, frames)
    if not report["passed"]:
        path.unlink(missing_ok=True)
        raise ExportError(f"{path}: detector parity failed: " + "; ".join(report["failures"]))
    return seconds, report


def pair_detections(boxes: np.ndarray, classes: np.ndarray, ref_boxes: np.ndarray,
                    ref_classes: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(ONNX index, eager index) pairs of same-class detections with the closest boxes, or
    None when the counts or classes differ. Pairing rather than comparing in order: two
    detections whose scores differ by less than the float error may swap places."""
    if len(boxes) != len(ref_boxes) or not np.array_equal(np.sort(classes),
                                                          np.sort(ref_classes)):
        return None
    cost = np.abs(boxes[:, None, :] - ref_boxes[None, :, :]).max(axis=2)  # [K,K]
    cost[classes[:, None] != ref_classes[None, :]] = 1e12
    return linear_sum_assignment(cost)


@torch.no_grad()
def check_parity(module: torch.nn.Module, path: Path, frames: list[np.ndarray],
                 box_tolerance_px: float = BOX_TOLERANCE_PX,
                 score_tolerance: float = SCORE_TOLERANCE) -> dict[str, Any]:
    """ONNX Runtime against eager on `frames`: the same detections (count, classes), paired
    by class and box; boxes and scores within the bounds (default 0.01 px, 1e-4)."""
    session = onnx_session(path)
    worst_box = worst_score = 0.0
    compared = 0
    failures = []
    for i, frame in enumerate(frames):
        boxes, scores, classes = session.run(None, {"frame": frame})
        ref_boxes, ref_scores, ref_classes = (t.numpy() for t in module(torch.from_numpy(frame)))
        pairs = pair_detections(boxes, classes, ref_boxes, ref_classes)
        if pairs is None:
            failures.append(f"frame {i}: {len(boxes)} detections vs eager {len(ref_boxes)}"
                            " (or other classes)")
            continue
        compared += len(boxes)
        if len(boxes):
            rows, cols = pairs
            worst_box = max(worst_box, float(np.abs(boxes[rows] - ref_boxes[cols]).max()))
            worst_score = max(worst_score, float(np.abs(scores[rows] - ref_scores[cols]).max()))
    if worst_box > box_tolerance_px or worst_score > score_tolerance:
        failures.append(f"max |box diff| {worst_box:.3g} px (bound {box_tolerance_px}), max "
                        f"|score diff| {worst_score:.3g} (bound {score_tolerance})")
    return {"frames": len(frames), "detections": compared, "max_abs_box_px": worst_box,
            "max_abs_score": worst_score, "box_tolerance_px": box_tolerance_px,
            "score_tolerance": score_tolerance, "passed": not failures, "failures": failures}


def export_detector(checkpoint: str | Path, folder: str | Path,
                    score_threshold: float | None = None,
                    file_name: str = FILE_NAME) -> dict[str, Any]:
    """Write FOLDER/`file_name`, check it, and return the detector's manifest section
    (the caller lists the file's sha256 in `files`). ExportError if parity fails."""
    checkpoint, folder = Path(checkpoint), Path(folder)
    cfg, model, state = load_detector(checkpoint)
    threshold = cfg.score_threshold if score_threshold is None else score_threshold
    model.roi_heads.score_thresh = threshold
    module = FrameDetector(model).eval()
    seconds, report = write_checked(module, folder / file_name, parity_frames())
    return {
        "file": file_name, "contract": DETECTOR_CONTRACT, "trained_on": TRAINED_ON,
        "classes": {str(i + 1): name for i, name in enumerate(cfg.classes)},
        "person_class_id": cfg.person_class_id, "score_threshold": threshold,
        "nms_iou": cfg.nms_iou, "max_detections": cfg.max_detections,
        "resize": {"where": "inside", "min_size": cfg.min_size, "max_size": cfg.max_size},
        "config": cfg.to_dict(), "parity": report, "export_seconds": round(seconds, 2),
        "training": {"checkpoint": str(checkpoint), "checkpoint_sha256":
                     file_record(checkpoint)["sha256"], "step": int(state["step"]),
                     "command": state.get("command", ""),
                     "evaluation": state.get("evaluation")},
    }
