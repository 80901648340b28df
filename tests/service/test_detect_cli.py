"""`aia detect` as a user runs it: a subprocess on the README's sample clip with the shipped
model (its detector, tracker and action graphs); the JSON, the AVA CSV and the annotated
video it writes."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "docs" / "sample" / "clip.mp4"


def frames_of(path: Path) -> tuple[int, int, int, list[np.ndarray]]:
    """(frame count, width, height, every 25th frame as RGB [H,W,3])."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        kept, n, size = [], 0, (0, 0)
        for frame in container.decode(stream):
            size = (frame.width, frame.height)
            if n % 25 == 0:
                kept.append(frame.to_ndarray(format="rgb24"))
            n += 1
    return n, size[0], size[1], kept


def test_detect_writes_json_csv_and_an_annotated_video(tmp_path: Path) -> None:
    out_json, out_csv, out_video = (tmp_path / "clip.json", tmp_path / "clip.csv",
                                    tmp_path / "clip.mp4")
    done = subprocess.run(
        [sys.executable, "-m", "cli", "detect", str(SAMPLE), "--out-json", str(out_json),
         "--out-csv", str(out_csv), "--out-video", str(out_video), "--top-k", "3",
         "--detector", "synthetic"],  # the synthetic benchmark's own detector
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "frames/s" in done.stderr  # the closing summary

    body = json.loads(out_json.read_text())
    assert [k["timestamp"] for k in body["keyframes"]] == [0.0, 1.0, 2.0, 3.0, 4.0]
    persons = [p for k in body["keyframes"] for p in k["persons"]]
    assert len(persons) >= 15  # the sample has 5-7 persons per key frame
    assert all(p["person_id"] is not None and p["score"] is not None for p in persons)
    assert all(1 <= len(p["actions"]) <= 3 for p in persons)

    rows = list(csv.reader(out_csv.read_text().splitlines()))
    assert len(rows) == sum(len(p["actions"]) for p in persons)
    for row in rows:
        assert row[0] == "clip"
        assert len(row) == 9
        x1, y1, x2, y2 = map(float, row[2:6])
        assert 0 <= x1 < x2 <= 1
        assert 0 <= y1 < y2 <= 1
        assert 0 < float(row[7]) <= 1

    count, width, height, _ = frames_of(SAMPLE)
    out_count, out_width, out_height, drawn = frames_of(out_video)
    assert (out_count, out_width, out_height) == (count, width, height)
    _, _, _, plain = frames_of(SAMPLE)
    # boxes and labels change the pictures: many pixels differ from the input's
    changed = [np.mean(np.abs(a.astype(int) - b.astype(int)).sum(-1) > 60)
               for a, b in zip(drawn, plain, strict=True)]
    assert min(changed) > 0.02, changed


def test_detect_scale_and_given_boxes(tmp_path: Path) -> None:
    boxes = ROOT / "docs" / "sample" / "boxes.json"
    out_video = tmp_path / "big.mp4"
    done = subprocess.run(
        [sys.executable, "-m", "cli", "detect", str(SAMPLE), "--boxes", str(boxes),
         "--out-json", str(tmp_path / "given.json"), "--out-video", str(out_video),
         "--scale", "2", "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    # --quiet: no progress, only what the answer rests on (the synthetic-only warning too)
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr
    assert lines[0].startswith("aia detect: model aia-synth-tiny: actions trained on ")
    assert lines[1].startswith("aia detect: warning: ")
    body = json.loads((tmp_path / "given.json").read_text())
    truth = json.loads(boxes.read_text())
    assert [len(k["persons"]) for k in body["keyframes"]] == [len(t["boxes"]) for t in truth]
    assert all(p["score"] is None for k in body["keyframes"] for p in k["persons"])
    count, width, height, _ = frames_of(SAMPLE)
    assert frames_of(out_video)[:3] == (count, 2 * width, 2 * height)
