"""Fixtures shared by the service tests: a small random-weight artifact in both formats."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporters.export import export_artifact
from exporters.random_weights import random_checkpoint
from model.config import preset


@pytest.fixture(scope="session")
def random_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny preset at 48x64 frames with random (non-zero) weights, exported to ONNX and
    TorchScript with the exporter's parity checks: about 20 s once per session."""
    cfg = preset("tiny").replace(input={"short_side": 48, "max_long_side": 64})
    folder = tmp_path_factory.mktemp("random-artifact")
    checkpoint = random_checkpoint(cfg, folder / "random.pt")
    return export_artifact(checkpoint, folder / "artifact").out
