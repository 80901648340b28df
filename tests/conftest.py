from __future__ import annotations

from pathlib import Path

import pytest
import torch

from exporters.export import export_artifact
from exporters.random_weights import random_checkpoint
from model.config import ModelConfig, preset


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def tiny_cfg() -> ModelConfig:
    """The tiny preset without dropout, so train and eval mode agree exactly."""
    return preset("tiny").replace(ia={"dropout": 0.0}, classifier={"dropout": 0.0})


@pytest.fixture(scope="session")
def random_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny preset at 48x64 frames with random (non-zero) weights, exported to ONNX and
    TorchScript with the exporter's parity checks: about 20 s, once per session for the
    service and deployment tests together."""
    cfg = preset("tiny").replace(input={"short_side": 48, "max_long_side": 64})
    folder = tmp_path_factory.mktemp("random-artifact")
    checkpoint = random_checkpoint(cfg, folder / "random.pt")
    return export_artifact(checkpoint, folder / "artifact").out


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """GPU tests are deselected by default (addopts); asked for on a CPU machine they skip."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
