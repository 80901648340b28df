"""`aia train-detector` end to end on a tiny network, and the scoring it reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cli.main import main
from model.detector.checkpoint import DetectorCheckpointError, load_detector
from model.detector.config import DetectorConfig, DetectorConfigError
from model.detector.evaluate import match
from model.detector.network import FrameDetector

TINY_SET = ["--set", "widths=[8,8,16,16]", "--set", "fpn_channels=16", "--set",
            "head_channels=32", "--set", "batch_size=2", "--set", "frames_per_second=1",
            "--set", "checkpoint_every=2"]


def test_train_writes_checkpoint_curve_and_scores(tiny_synth: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "det"
    assert main(["train-detector", "--data", str(tiny_synth), "--out", str(out), "--steps", "3",
                 "--quiet", *TINY_SET]) == 0
    assert "person recall" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} >= {"detector.pt", "detector-loss.png",
                                               "detector-eval.json", "detector-metrics.jsonl"}
    assert (out / "detector-loss.png").read_bytes()[:4] == b"\x89PNG"
    result = json.loads((out / "detector-eval.json").read_text())
    shown = result["at_threshold"]
    assert shown["persons"] > 0
    assert 0.0 <= shown["person_recall"] <= 1.0
    assert len(result["sweep"]) >= 3
    cfg, model, state = load_detector(out / "detector.pt")
    assert cfg.widths == (8, 8, 16, 16)
    assert state["step"] == 3
    assert "train-detector" in state["command"]
    boxes, scores, classes = FrameDetector(model)(torch.zeros(64, 96, 3, dtype=torch.uint8))
    assert boxes.shape[1] == 4
    assert len(scores) == len(classes)
    # resume continues from the saved step
    assert main(["train-detector", "--data", str(tiny_synth), "--out", str(out), "--steps", "4",
                 "--quiet", "--resume", *TINY_SET]) == 0
    assert len((out / "detector-metrics.jsonl").read_text().splitlines()) == 4


def test_bad_settings_are_refused(tiny_synth: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train-detector", "--data", str(tiny_synth), "--out", str(tmp_path),
                 "--set", "no_such_key=1"]) == 2
    assert "no_such_key" in capsys.readouterr().err
    with pytest.raises(DetectorConfigError, match="first class must be person"):
        DetectorConfig(classes=("box", "person"))
    with pytest.raises(DetectorCheckpointError, match="not found"):
        load_detector(tmp_path / "missing.pt")


def test_config_round_trips() -> None:
    cfg = DetectorConfig(widths=(8, 16, 16, 32), score_threshold=0.3)
    assert DetectorConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_match_counts_hits_false_alarms_and_ignores() -> None:
    truth = np.array([[0, 0, 10, 20], [50, 0, 60, 20]], np.float32)
    ignore = np.array([[90, 0, 100, 20]], np.float32)
    found = np.array([[0, 0, 10, 21], [1, 0, 10, 20], [90, 0, 99, 20], [30, 30, 40, 40]],
                     np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    # one hit, the duplicate and the stray box are false, the box on the ignored person is not
    assert match(found, scores, truth, ignore) == (1, 2, 2)
    assert match(found, scores, truth) == (1, 3, 2)
    assert match(found[:0], scores[:0], truth) == (0, 0, 2)
