"""Training runs end to end on real mp4s: loss goes down, resume after SIGKILL is exact,
two gloo processes share the AMU bank, bad checkpoints are refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from model.config import from_dict
from model.data.batching import make_loader
from model.data.dataset import AvaDataset, eval_options
from model.data.layout import load_layout
from model.losses import action_loss
from model.network import build_aia, empty_memory
from model.train import checkpoint as ckpt
from model.train.config import load
from model.train.loop import train
from tests.model.train.conftest import overrides


def cli_sets(items: list[str]) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


def losses(out: Path) -> dict[int, float]:
    """step -> loss; a step logged twice (killed, then resumed) keeps its last record."""
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if "loss" in r}


def dataset_loss(root: Path, checkpoint: Path) -> float:
    """Mean loss over the training key frames, eval mode, no augmentation, no memory."""
    state = ckpt.load(checkpoint)
    cfg = from_dict(state["model_config"])
    model = build_aia(cfg).eval()
    model.load_state_dict(state["model"])
    data = AvaDataset(load_layout(root), "train", cfg, eval_options(persons="ground_truth"))
    total = 0.0
    with torch.no_grad():
        for b in make_loader(data, 8):
            out = model(b.clip, b.person_boxes, b.object_boxes, *empty_memory(cfg, b.num_clips))
            loss = action_loss(out.logits, b.targets, cfg.classifier.groups).total
            total += float(loss) * b.num_clips
    return total / len(data)


def test_training_lowers_the_loss_and_writes_everything(toy_root, tmp_path) -> None:
    out = tmp_path / "run"
    train(load(None, overrides(toy_root, out, 16, **{"validation.every": 16, "optim.lr": 0.2,
                                                     "checkpoint.keep_last": 8})))
    curve = losses(out)
    assert sorted(curve) == list(range(1, 17))
    early = dataset_loss(toy_root, out / "checkpoints" / "step-00000002.pt")
    late = dataset_loss(toy_root, out / "checkpoints" / "step-00000016.pt")
    assert late < early - 0.01
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in records if "val_map" in r]
    assert len(val) == 1
    assert 0.0 <= val[0]["val_map"] <= 1.0
    assert (out / "curves.png").stat().st_size > 0
    assert (out / "checkpoints" / "best.pt").is_file()
    assert len(ckpt.CheckpointDir(out, 8).steps()) == 8  # every 2 steps, the last 8 kept
    state = ckpt.load(out / "checkpoints" / "step-00000016.pt")
    assert state["step"] == 16
    assert state["bank"]["entries"]  # AMU writes were made and saved
    assert state["model_config"]["classifier"]["num_classes"] == 4


def test_resume_after_kill_reproduces_the_uninterrupted_run(toy_root, tmp_path) -> None:
    straight = tmp_path / "straight"
    train(load(None, overrides(toy_root, straight, 8)))
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "model.train", *cli_sets(overrides(toy_root, killed, 8))]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = killed / "checkpoints" / "step-00000004.pt"
    deadline = time.monotonic() + 120
    while not target.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert target.exists(), "the run died before its step-4 checkpoint"
    assert not (killed / "checkpoints" / "step-00000008.pt").exists()
    train(load(None, overrides(toy_root, killed, 8)), resume="auto")
    expected, got = losses(straight), losses(killed)
    assert sorted(got) == sorted(expected) == list(range(1, 9))
    for step in expected:
        assert got[step] == pytest.approx(expected[step], abs=1e-4), step


def test_two_gloo_processes_share_bank_writes(toy_root, tmp_path) -> None:
    out = tmp_path / "ddp"
    sets = cli_sets(overrides(toy_root, out, 2))
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "model.train", *sets], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = ckpt.load(out / "checkpoints" / "step-00000002.pt")
    keys = {(v, s) for v, s, _, _ in state["bank"]["entries"]}
    # 2 steps x 2 ranks x 2 clips per rank, all distinct within the epoch: rank 0 holds all 8
    assert len(keys) == 8


def test_corrupt_or_foreign_checkpoints_are_refused(toy_root, tmp_path) -> None:
    out = tmp_path / "run"
    train(load(None, overrides(toy_root, out, 2)))
    good = out / "checkpoints" / "step-00000002.pt"
    data = good.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ckpt.CheckpointError, match=r"truncated\.pt: not a readable checkpoint"):
        ckpt.load(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"format": "something/else"}, foreign)
    with pytest.raises(ckpt.CheckpointError, match=r"foreign\.pt: format 'something/else'"):
        ckpt.load(foreign)
    with pytest.raises(ckpt.CheckpointError, match="not found"):
        ckpt.load(tmp_path / "missing.pt")
    with pytest.raises(ckpt.CheckpointError, match="truncated"):
        train(load(None, overrides(toy_root, out, 4)), resume=str(truncated))
