"""`aia eval`: AVA frame mAP at IoU 0.5 of a prediction CSV against ground truth, with the
official ActivityNet evaluator's numbers (see model/evaluate.py). Prints a per-class table
and optionally writes JSON."""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import tempfile
from pathlib import Path

from tqdm import tqdm

from model.data.ava_files import (
    AvaFormatError,
    Row,
    read_exclusions,
    read_label_map,
    read_numbered_rows,
    read_rows,
)
from model.evaluate import MAX_DETECTIONS_PER_KEYFRAME, EvalResult, evaluate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True, type=Path,
                        help="ground truth CSV: video_id,timestamp,x1,y1,x2,y2,action_id,person_id")
    parser.add_argument("--pred", required=True, type=Path,
                        help="predictions CSV: video_id,timestamp,x1,y1,x2,y2,action_id,score")
    parser.add_argument("--labelmap", required=True, type=Path,
                        help="AVA .pbtxt label map; only its classes are scored")
    parser.add_argument("--exclusions", type=Path,
                        help="CSV video_id,timestamp of key frames left out on both sides")
    parser.add_argument("--groups", type=Path,
                        help="CSV with header columns id and group (e.g. the dataset's "
                             "labels.csv): also report mean AP per group")
    parser.add_argument("--json", type=Path, help="write the result as JSON here")
    parser.add_argument("--max-per-keyframe", type=int, default=MAX_DETECTIONS_PER_KEYFRAME,
                        metavar="N", help="prediction rows kept per key frame, best first (the "
                        f"official {MAX_DETECTIONS_PER_KEYFRAME}); 0 keeps every row, a "
                        "diagnostic for dense key frames, not the official number")


def read_groups(path: Path) -> dict[int, str]:
    """class id -> group name from a CSV with a header naming `id` and `group` columns."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"id", "group"} <= set(reader.fieldnames):
            raise AvaFormatError(f"{path}: needs columns id and group in its header line, "
                                 f"found {reader.fieldnames}")
        groups: dict[int, str] = {}
        for row in reader:
            try:
                groups[int(row["id"])] = row["group"].strip()
            except (TypeError, ValueError):
                raise AvaFormatError(f"{path}:{reader.line_num}: id {row['id']!r} is not a "
                                     "whole number") from None
    return groups


def _as_ava_rows(path: Path, scratch: Path) -> Path:
    """The service's CSV answers add a 9th column, the tracked person_id, and write key-frame
    times as decimals ("1.000"): a copy without the one and with whole seconds written as
    AVA writes them is read (same lines, same line numbers)."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    changed = False
    for row in rows:
        if len(row) == 9:
            del row[8]
            changed = True
        if len(row) > 1 and "." in row[1]:
            try:
                seconds = float(row[1])
            except ValueError:
                continue  # left for the reader to report
            if seconds.is_integer():
                row[1], changed = str(int(seconds)), True
    if not changed:
        return path
    copy = scratch / path.name
    with open(copy, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)
    return copy


def _read_predictions(path: Path) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="aia-eval-") as scratch:
        numbered = read_numbered_rows(_as_ava_rows(path, Path(scratch)), "score")
    rows = []
    for line, row in numbered:
        if row.value is None:
            raise AvaFormatError(f"{path}:{line}: no score; prediction rows need 8 columns "
                                 "video_id,timestamp,x1,y1,x2,y2,action_id,score")
        rows.append(row)
    return rows


def format_table(result: EvalResult, groups: dict[int, str] | None) -> str:
    """Per-class AP (in percent) with names, then group means and the mAP."""
    width = max((len(n) for n in result.names.values()), default=4)
    lines = [f"{'id':>4}  {'class':<{width}}  {'AP':>6}  {'gt':>7}  {'dets':>8}"]
    for class_id, name in result.names.items():
        ap = result.ap.get(class_id)
        shown = f"{100 * ap:6.2f}" if ap is not None else "     -"
        note = "" if ap is not None else "  (no ground truth, left out of the mean)"
        lines.append(f"{class_id:>4}  {name:<{width}}  {shown}  {result.num_gt[class_id]:>7}"
                     f"  {result.num_detections[class_id]:>8}{note}")
    if groups is not None:
        for group, value in result.group_means(groups).items():
            lines.append(f"group {group:<{width - 1}}  {100 * value:6.2f}")
    shown = "     -" if math.isnan(result.mean_ap) else f"{100 * result.mean_ap:6.2f}"
    cut = ("" if result.max_per_keyframe == MAX_DETECTIONS_PER_KEYFRAME else
           f" (rows per key frame: {result.max_per_keyframe or 'all'}, not the official "
           f"{MAX_DETECTIONS_PER_KEYFRAME})")
    lines.append(f"mAP@0.5IoU over {len(result.ap)} classes: {shown}{cut}")
    return "\n".join(lines)


def _write_json(path: Path, data: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    os.replace(tmp, path)


def run(args: argparse.Namespace) -> int:
    steps = tqdm(total=5, desc="eval", unit="step", file=sys.stderr, leave=False)
    try:
        labels = read_label_map(args.labelmap)
        groups = read_groups(args.groups) if args.groups else None
        exclusions = read_exclusions(args.exclusions) if args.exclusions else set()
        if args.max_per_keyframe < 0:
            raise ValueError(f"--max-per-keyframe {args.max_per_keyframe}: must be >= 0 "
                             "(0: no cut)")
        steps.update()
        gt_rows = read_rows(args.gt, "person_id")
        steps.update()
        pred_rows = _read_predictions(args.pred)
        steps.update()
        result = evaluate(gt_rows, pred_rows, labels, exclusions,
                          args.max_per_keyframe or None)
        steps.update()
        if args.json:
            data = result.to_dict(groups)
            data["files"] = {"gt": str(args.gt), "pred": str(args.pred),
                             "labelmap": str(args.labelmap),
                             "exclusions": str(args.exclusions) if args.exclusions else None}
            _write_json(args.json, data)
        steps.update()
    except (OSError, ValueError) as error:  # AvaFormatError is a ValueError
        steps.close()
        print(f"aia eval: error: {error}", file=sys.stderr)
        return 2
    steps.close()
    print(format_table(result, groups))
    if not result.ap:
        print("aia eval: warning: no label-map class has ground truth; mAP is undefined",
              file=sys.stderr)
    return 0
