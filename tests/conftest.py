from __future__ import annotations

import pytest
import torch

from model.config import ModelConfig, preset


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def tiny_cfg() -> ModelConfig:
    """The tiny preset without dropout, so train and eval mode agree exactly."""
    return preset("tiny").replace(ia={"dropout": 0.0}, classifier={"dropout": 0.0})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """GPU tests are deselected by default (addopts); asked for on a CPU machine they skip."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
