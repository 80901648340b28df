from __future__ import annotations

from pathlib import Path

import pytest

from model.data.toy import ToyVideo, write_toy_dataset


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory) -> Path:
    """Two 6-second toy videos (real H.264 mp4s), 4 classes."""
    root = tmp_path_factory.mktemp("toy")
    videos = [ToyVideo("v1", 6, width=64, height=48), ToyVideo("v2", 6, width=64, height=48)]
    return write_toy_dataset(root, videos)


def overrides(root: Path, out: Path, steps: int, **extra: object) -> list[str]:
    """A tiny, fast run: the tiny preset at 48x64, batch 4, no milestones."""
    base = {
        "data.root": root, "out_dir": out, "model.preset": "tiny",
        "model.overrides": "{input: {short_side: 48, max_long_side: 64}}",
        "data.batch_size": 4, "schedule.max_steps": steps, "schedule.warmup_steps": 2,
        "schedule.milestones": "[]", "optim.lr": 0.05, "log_every": 1,
        "validation.every": 0, "checkpoint.every": 2,
    } | extra
    return [f"{k}={v}" for k, v in base.items()]
