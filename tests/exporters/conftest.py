from __future__ import annotations

from pathlib import Path

import pytest

from exporters.export import ExportOptions, export_artifact
from exporters.graphs import Format
from exporters.random_weights import random_checkpoint
from model.config import ModelConfig, preset


@pytest.fixture(scope="session")
def export_cfg() -> ModelConfig:
    """The tiny preset at 48x64 frames: the exports take as long, the parity runs less."""
    return preset("tiny").replace(input={"short_side": 48, "max_long_side": 64})


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory, export_cfg) -> Path:
    """A training-format checkpoint with random (all non-zero) weights."""
    return random_checkpoint(export_cfg, tmp_path_factory.mktemp("ckpt") / "random.pt")


@pytest.fixture(scope="session")
def ts_artifact(tmp_path_factory, checkpoint) -> Path:
    """A TorchScript-only fp32 artifact: fast to make, for the loader's refusal tests."""
    out = tmp_path_factory.mktemp("ts") / "artifact"
    export_artifact(checkpoint, out, ExportOptions(formats=(Format.TORCHSCRIPT,)))
    return out
