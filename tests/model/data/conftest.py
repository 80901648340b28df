"""A small AVA-format dataset (real H.264 mp4s) shared by the loader tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from model.config import ModelConfig, preset
from model.data.toy import ToyVideo, write_toy_dataset

NUM_CLASSES = 4
VIDEOS = (
    ToyVideo("one", seconds=4, persons=1),  # one person per key frame
    ToyVideo("three", seconds=3, fps=30.0, persons=3),  # many persons, 30 fps source
    ToyVideo("portrait", seconds=2, width=48, height=64, persons=2),  # another size
    ToyVideo("weak", seconds=2, persons=1, detection_score=0.5),  # detector below 0.8
)


@pytest.fixture(scope="session")
def small_cfg() -> ModelConfig:
    """8 frames at 25 fps, short side 32: the tiny network at a size that decodes fast."""
    return preset("tiny").replace(
        input={"frames": 8, "alpha": 2, "short_side": 32, "max_long_side": 64},
        ia={"max_persons": 8, "max_objects": 5, "dropout": 0.0},
        classifier={"num_classes": NUM_CLASSES, "dropout": 0.0,
                    "groups": [{"name": "pose", "first_id": 1, "last_id": 2,
                                "loss": "softmax", "weight": 1.0},
                               {"name": "person", "first_id": 3, "last_id": 4,
                                "loss": "sigmoid", "weight": 1.0}]},
    )


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_toy_dataset(tmp_path_factory.mktemp("toy"), VIDEOS, NUM_CLASSES)


@pytest.fixture
def toy_copy(toy_root: Path, tmp_path: Path) -> Path:
    """A private copy of the toy dataset that a test may break."""
    return Path(shutil.copytree(toy_root, tmp_path / "toy"))
