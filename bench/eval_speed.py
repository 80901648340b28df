"""Evaluator speed: AVA frame mAP of synthetic rows shaped like an AVA validation run (60 scored
classes, 50k key frames, 1-3 persons each, every detected person scored on 20 classes, so
most key frames are over the 50-detection cap). Times `model.evaluate.evaluate` on rows in
memory, with full-precision scores and with scores rounded to 3 decimals (ties, which take
the literal heap path); `--files` also times writing and reading the prediction CSV.

Prints seconds and writes JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from model.data.ava_files import Row, read_rows, write_rows
from model.evaluate import evaluate


def synthetic(keyframes: int, classes: int, per_person: int, decimals: int | None,
              seed: int) -> tuple[list[Row], list[Row], dict[int, str], set[tuple[str, int]]]:
    rng = np.random.default_rng(seed)
    labels = {c: f"action {c}" for c in range(1, classes + 1)}
    persons = rng.integers(1, 4, keyframes)  # [K]
    gts, preds = [], []
    for k in range(keyframes):
        video, t = f"video{k // 900:03d}", 902 + k % 900
        xy = rng.uniform(0.0, 0.6, (persons[k] + 1, 2))
        wh = rng.uniform(0.1, 0.4, (persons[k] + 1, 2))
        boxes = np.concatenate([xy, xy + wh], axis=1).round(3)  # [P+1, 4]; the last is a miss
        jitter = boxes + rng.normal(0.0, 0.03, boxes.shape)
        jitter = np.clip(np.sort(jitter.reshape(-1, 2, 2), axis=1).reshape(-1, 4), 0.0, 1.0)
        for p, box in enumerate(jitter.tolist()):
            # the person's true classes first (scored higher), then others
            picked = rng.permutation(classes)[:per_person] + 1
            true = picked[:rng.integers(1, 4)] if p < persons[k] else picked[:0]
            for c in true.tolist():
                gts.append(Row(video, t, tuple(boxes[p].tolist()), c, float(p)))
            scores = rng.random(per_person) * 0.8
            scores[:true.size] += 0.2
            if decimals is not None:
                scores = scores.round(decimals)
            x1, y1, x2, y2 = box
            for c, s in zip(picked.tolist(), scores.tolist(), strict=True):
                preds.append(Row(video, t, (x1, y1, x2, y2), c, s))
    excluded = {(f"video{k // 900:03d}", 902 + k % 900)
                for k in rng.choice(keyframes, keyframes // 100, replace=False).tolist()}
    return gts, preds, labels, excluded


def timed_evaluate(gts: list[Row], preds: list[Row], labels: dict[int, str],
                   excluded: set[tuple[str, int]], repeats: int) -> tuple[float, float, float]:
    """Median wall and CPU seconds of `evaluate` (CPU time is less sensitive to a busy
    machine), and the mAP."""
    wall, cpu, mean_ap = [], [], 0.0
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        mean_ap = evaluate(gts, preds, labels, excluded).mean_ap
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return float(np.median(wall)), float(np.median(cpu)), mean_ap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keyframes", type=int, default=50_000)
    parser.add_argument("--classes", type=int, default=60)
    parser.add_argument("--per-person", type=int, default=20, help="classes scored per person")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--files", action="store_true", help="also time CSV write and read")
    parser.add_argument("--out", type=Path, default=Path("bench/results/eval_speed.json"))
    args = parser.parse_args()
    result: dict[str, object] = {
        "keyframes": args.keyframes, "classes": args.classes, "per_person": args.per_person,
        "machine": platform.processor() or platform.machine(), "numpy": np.__version__,
        "load_average_at_start": list(os.getloadavg()),
    }
    for name, decimals in (("float_scores", None), ("scores_3_decimals", 3)):
        gts, preds, labels, excluded = synthetic(args.keyframes, args.classes, args.per_person,
                                                 decimals, seed=0)
        seconds, cpu, mean_ap = timed_evaluate(gts, preds, labels, excluded, args.repeats)
        result[name] = {"gt_rows": len(gts), "pred_rows": len(preds), "evaluate_s": seconds,
                        "evaluate_cpu_s": cpu, "mAP": mean_ap}
        print(f"{name}: {len(gts)} gt rows, {len(preds)} prediction rows -> evaluate "
              f"{seconds:.2f} s wall, {cpu:.2f} s CPU (median of {args.repeats}), "
              f"mAP {mean_ap:.4f}")
        if args.files and decimals is not None:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "pred.csv"
                start = time.perf_counter()
                write_rows(path, preds, "score")
                written = time.perf_counter() - start
                start = time.perf_counter()
                read_rows(path, "score")
                read = time.perf_counter() - start
            result[name] |= {"write_csv_s": written, "read_csv_s": read}
            print(f"  prediction CSV: write {written:.2f} s, read {read:.2f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
