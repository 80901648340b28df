"""TorchScript traces follow their input's device; GPU runs of the artifact (pytest -m gpu)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from exporters.graphs import follow_input_device


class Ranks(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.arange(x.shape[0], device=x.device).unsqueeze(1)


def test_device_constants_become_the_inputs_device() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(Ranks(), (torch.zeros(3, 2),))
    assert 'torch.device("cpu")' in traced.code
    assert follow_input_device(traced) == 1
    assert 'torch.device("cpu")' not in traced.code
    x = torch.randn(5, 2)  # another length than the trace's
    torch.testing.assert_close(traced(x), Ranks()(x))


class CudaRunner:
    """TorchScript graphs loaded onto the GPU, fed and read through numpy."""

    def __init__(self, features: torch.jit.ScriptModule, head: torch.jit.ScriptModule) -> None:
        self._features, self._head = features, head

    def features(self, clip: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self._features(torch.from_numpy(clip).cuda(),
                                  torch.from_numpy(boxes).cuda()).cpu().numpy()

    def head(self, *inputs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self._head(*(torch.from_numpy(x).cuda() for x in inputs)).cpu().numpy()


@pytest.mark.gpu
def test_cpu_traced_torchscript_runs_on_cuda(ts_artifact, checkpoint, export_cfg) -> None:
    from exporters.artifact import load_artifact, load_torchscript
    from exporters.parity import TorchRunner, random_cases, run_case
    from model.network import AIA
    from model.train import checkpoint as ckpt

    artifact = load_artifact(ts_artifact, formats=("torchscript",))
    model = AIA(export_cfg).eval()
    model.load_state_dict(ckpt.load(checkpoint)["model"])
    eager = TorchRunner(model.features, model.head)
    cuda = CudaRunner(load_torchscript(artifact.path("features", "torchscript"), "cuda"),
                      load_torchscript(artifact.path("head", "torchscript"), "cuda"))
    for case in random_cases(artifact.input, 48, 64, seed=3):
        _, expected = run_case(eager, case, export_cfg.ia.max_objects)
        _, got = run_case(cuda, case, export_cfg.ia.max_objects)
        np.testing.assert_allclose(got, expected, atol=1e-3, rtol=0)  # TF32 convolutions
