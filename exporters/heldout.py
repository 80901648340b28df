"""Score an exported artifact on AVA-format data, through its exported graphs.

The same offline two-pass inference as training's validation (`model.train.validate`), with
graph 1 and graph 2 run by ONNX Runtime or the reloaded TorchScript instead of the eager
model: what the artifact scores here is what the service will score. The shipped model's
test runs it on a freshly generated held-out synthetic set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from exporters.artifact import Artifact, load_artifact, load_torchscript, onnx_session
from exporters.graphs import Format
from exporters.parity import OnnxRunner, Runner, TorchRunner
from model.data.dataset import AvaDataset, eval_options
from model.train.validate import Validation, validate


class ExportedGraphs:
    """Looks like `model.network.AIA` to `validate`: features/head on torch tensors."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.training = False

    def eval(self) -> ExportedGraphs:
        return self

    def train(self, mode: bool = True) -> ExportedGraphs:
        return self

    def features(self, clip: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        out = self.runner.features(clip.numpy().astype(np.uint8), boxes.numpy().astype(np.float32))
        return torch.from_numpy(np.asarray(out, np.float32))

    def head(self, *inputs: torch.Tensor) -> torch.Tensor:
        arrays = [x.numpy() for x in inputs]
        # graph 2 takes float32 features and int64 indices/offsets, bool masks
        arrays = [a.astype(np.float32) if a.dtype.kind == "f" else a for a in arrays]
        return torch.from_numpy(np.asarray(self.runner.head(*arrays), np.float32))


def runner_for(artifact: Artifact, fmt: Format) -> Runner:
    if fmt is Format.ONNX:
        return OnnxRunner(onnx_session(artifact.path("features", "onnx")),
                          onnx_session(artifact.path("head", "onnx")))
    return TorchRunner(load_torchscript(artifact.path("features", "torchscript")),
                       load_torchscript(artifact.path("head", "torchscript")))


def score_artifact(artifact_dir: str | Path, data_root: str | Path, split: str = "val",
                   fmt: Format = Format.ONNX, batch_size: int = 8,
                   person_threshold: float | None = None,
                   out_csv: Path | None = None) -> Validation:
    """Frame mAP@0.5 of the artifact on `split` of `data_root` (the validation procedure)."""
    artifact = load_artifact(artifact_dir, formats=[fmt.value])
    if person_threshold is None:
        data: dict[str, Any] = (artifact.training.get("train_config") or {}).get("data") or {}
        person_threshold = float(data.get("person_threshold", 0.0))
    dataset = AvaDataset(data_root, split, artifact.config,
                         eval_options(person_threshold=person_threshold))
    graphs: Any = ExportedGraphs(runner_for(artifact, fmt))
    return validate(graphs, artifact.config, dataset, artifact.labels, batch_size,
                    torch.device("cpu"), out_csv)
