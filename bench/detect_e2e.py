"""End to end on a held-out synthetic set: frame mAP@0.5 of the service's engine when it finds
the persons itself (detector + tracker + action model) next to the same engine given the
ground-truth person boxes, on the same videos and key frames.

    .venv/bin/python bench/detect_e2e.py            # generates seed 515151, 6 x 30 s
    .venv/bin/python bench/detect_e2e.py --data DIR --split val

The engine is `aia detect`'s (service/detect_cli.py: the service's stages, in-process). Every
action score of every person is kept (min_score 0, all classes) and scored by model.evaluate
(what `aia eval` runs) against the set's annotations, with its exclusions and label table.
Writes the prediction CSVs, bench/results/detect_e2e.json and docs/results/detect-e2e.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from model.data.ava_files import Row, read_exclusions, read_rows, write_rows
from model.data.layout import load_layout
from model.evaluate import EvalResult, evaluate
from model.labels import Label, read_label_table
from service.detect_cli import Built, Progress, build
from service.params import BoxesAt, DetectParams
from service.schemas import DetectResponse
from service.settings import DEFAULT_MODEL, Settings

SEED, VIDEOS, SECONDS = 515151, 6, 30
MODES = ("detector", "ground-truth boxes")


def generate(out: Path) -> Path:
    if not (out / "dataset.json").is_file():
        subprocess.run([sys.executable, "-m", "cli", "synth", "--out", str(out),
                        "--videos", str(VIDEOS), "--seconds", str(SECONDS), "--seed", str(SEED),
                        "--split-val", "0", "--quiet", "--overwrite"], check=True)
    return out


def truth_boxes(gt: Sequence[Row], video_id: str, seconds: Sequence[int]) -> tuple[BoxesAt, ...]:
    """Each key frame's annotated persons (one box per person, whatever its actions)."""
    out = []
    for second in seconds:
        boxes = sorted({r.box for r in gt if r.video_id == video_id and r.timestamp == second})
        out.append(BoxesAt(float(second), np.asarray(boxes, np.float32).reshape(-1, 4)))
    return tuple(out)


def rows_of(response: DetectResponse, video_id: str, seconds: set[int]) -> list[Row]:
    rows = []
    for keyframe in response.keyframes:
        second = round(keyframe.timestamp)
        if second not in seconds:
            continue
        for person in keyframe.persons:
            box = tuple(person.box)
            rows += [Row(video_id, second, box, a.id, a.score) for a in person.actions]  # type: ignore[arg-type]
    return rows


async def predict(built: Built, videos: dict[str, Path], gt: Sequence[Row],
                  seconds: dict[str, list[int]], classes: int) -> tuple[dict[str, list[Row]],
                                                                        dict[str, float]]:
    preds: dict[str, list[Row]] = {mode: [] for mode in MODES}
    spent = dict.fromkeys(MODES, 0.0)
    try:
        for video_id, path in videos.items():
            for mode in MODES:
                boxes = None if mode == "detector" else truth_boxes(gt, video_id,
                                                                    seconds[video_id])
                params = DetectParams(min_score=0.0, top_k=classes, boxes=boxes)
                started = time.perf_counter()
                answer = await built.engine.detect(path, params, video_id)
                spent[mode] += time.perf_counter() - started
                response = DetectResponse.model_validate_json(answer.body)
                preds[mode] += rows_of(response, video_id, set(seconds[video_id]))
            print(f"{video_id}: done", file=sys.stderr)
    finally:
        await built.batcher.close()
    return preds, spent


def summary(result: EvalResult, labels: Sequence[Label]) -> dict[str, object]:
    groups = result.group_means({label.id: label.group for label in labels})
    return {"mAP": round(result.mean_ap, 4),
            "groups": {g: round(v, 4) for g, v in groups.items()},
            "ap": {int(c): round(v, 4) for c, v in result.ap.items()}}


def markdown(report: dict[str, object], command: str) -> str:
    results: dict[str, dict[str, object]] = report["results"]  # type: ignore[assignment]
    groups = sorted({g for r in results.values() for g in r["groups"]})  # type: ignore[union-attr]
    classes = max(len(r["ap"]) for r in results.values())  # type: ignore[arg-type]
    lines = ["# End to end: detector + tracker + action model vs ground-truth boxes", "",
             f"`{command}`", "",
             f"Held-out synthetic set: {report['data']} ({report['videos']} videos, "
             f"{report['key_frames']} key frames; seed {report['seed']}), model "
             f"`{report['model']}`, the service's engine (`aia detect`), frame mAP@0.5 by "
             f"model.evaluate (`aia eval`'s numbers) over the {classes} synthetic classes.", "",
             "| persons from | mAP | " + " | ".join(groups) + " | s per video |",
             "|---|---|" + "---|" * len(groups) + "---|"]
    for mode, r in results.items():
        cells = [f"{100 * r['groups'].get(g, float('nan')):.1f}" for g in groups]  # type: ignore[union-attr]
        lines.append(f"| {mode} | {100 * r['mAP']:.1f} | " + " | ".join(cells)  # type: ignore[operator]
                     + f" | {r['seconds_per_video']:.1f} |")
    lines += ["", "Ground-truth boxes are the annotation boxes of each key frame, given as the "
              "request's `boxes` (no detector, no tracker); the evaluator matches at IoU 0.5, "
              "so the gap is what detection costs end to end. The same numbers from the CLI: "
              f"`aia eval --gt {report['annotations']} --pred {report['work']}/pred-detector.csv "
              f"--labelmap {report['labelmap']} --exclusions {report['exclusions']}`.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None,
                        help=f"AVA-format set (default: generate seed {SEED} in --work)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--work", type=Path, default=Path("runs/detect_e2e"))
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--detector", default="synthetic",
                        help="the artifact's detector (synthetic data: its own detector)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/detect_e2e.json"))
    parser.add_argument("--md", type=Path, default=Path("docs/results/detect-e2e.md"))
    args = parser.parse_args()
    data = args.data if args.data is not None else generate(args.work / f"synth-{SEED}")
    layout = load_layout(data)
    files = layout.split(args.split)
    gt = read_rows(files.annotations, "person_id")
    videos = {v: p for v, p in sorted(layout.video_paths().items())
              if any(r.video_id == v for r in gt)}
    exclusions = read_exclusions(files.exclusions) if files.exclusions else set()
    labels = read_label_table(layout.label_table) if layout.label_table else ()
    synth = json.loads(layout.source.read_text()).get("synth", {})
    if "key_seconds" in synth:
        first, last = synth["key_seconds"]
        seconds = {v: list(range(first, last + 1)) for v in videos}
    else:
        seconds = {v: sorted({r.timestamp for r in gt if r.video_id == v}) for v in videos}
    built = build(Settings(model_dir=args.model, detector=args.detector),
                  Progress(0, quiet=True))
    preds, spent = asyncio.run(predict(built, videos, gt, seconds, len(built.artifact.labels)))
    evaluated = {label.id: label.name for label in labels if label.evaluated}
    results = {}
    for mode in MODES:
        csv_path = args.work / f"pred-{mode.split()[0]}.csv"
        args.work.mkdir(parents=True, exist_ok=True)
        write_rows(csv_path, preds[mode], "score")
        result = evaluate(gt, preds[mode], evaluated, exclusions)
        results[mode] = {**summary(result, labels), "pred_csv": str(csv_path),
                         "seconds_per_video": round(spent[mode] / max(len(videos), 1), 2)}
        print(f"{mode:>20}: frame mAP@0.5 {100 * result.mean_ap:.2f}  groups "
              + ", ".join(f"{g} {100 * v:.1f}" for g, v in results[mode]["groups"].items()))
    report = {"data": str(data), "split": args.split, "seed": synth.get("seed"),
              "model": args.model.name, "videos": len(videos),
              "key_frames": sum(len(s) for s in seconds.values()),
              "excluded_key_frames": len(exclusions), "annotations": str(files.annotations),
              "exclusions": str(files.exclusions), "labelmap": str(layout.label_map),
              "work": str(args.work), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    command = "python bench/detect_e2e.py" + ("" if args.data is None else f" --data {data}")
    args.md.parent.mkdir(parents=True, exist_ok=True)
    args.md.write_text(markdown(report, command), encoding="utf-8")
    print(f"wrote {args.out} and {args.md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
