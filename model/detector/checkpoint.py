"""Detector checkpoints: a plain dict (tensors, numbers, strings) written atomically and read
with weights_only=True."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torchvision.models.detection import FasterRCNN

from model.detector.config import DetectorConfig, DetectorConfigError
from model.detector.network import build_detector

FORMAT = "aia-detector/1"
FILE_NAME = "detector.pt"  # `aia export` looks for this beside the action checkpoint


class DetectorCheckpointError(RuntimeError):
    """A detector checkpoint that cannot be used; the message names the file."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise DetectorCheckpointError(f"{path}: detector checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated/corrupt archives
        raise DetectorCheckpointError(f"{path}: not a readable checkpoint: {err}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise DetectorCheckpointError(f"{path}: format {found!r}, expected {FORMAT!r} "
                                      "(train one with `aia train-detector`)")
    return state


def load_detector(path: str | Path) -> tuple[DetectorConfig, FasterRCNN, dict[str, Any]]:
    """-> (config, network in eval mode, the checkpoint dict)."""
    state = read_checkpoint(path)
    try:
        cfg = DetectorConfig.from_dict(state["config"])
        model = build_detector(cfg)
        model.load_state_dict(state["model"])
    except (KeyError, DetectorConfigError, RuntimeError) as err:
        raise DetectorCheckpointError(f"{path}: does not build a detector: {err}") from None
    return cfg, model.eval(), state


def save_detector(path: str | Path, cfg: DetectorConfig, model: FasterRCNN, step: int = 0,
                  **extra: Any) -> Path:
    """An inference checkpoint (no optimiser), written atomically."""
    from model.detector.network import state_dict_of
    from model.train.checkpoint import save_atomic

    path = Path(path)
    save_atomic({"format": FORMAT, "step": step, "config": cfg.to_dict(),
                 "model": state_dict_of(model), **extra}, path)
    return path
