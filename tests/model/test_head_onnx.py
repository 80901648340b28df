"""Graph 2 is a pure tensor function: it exports to ONNX with dynamic persons, clips, objects
and memory slots, and ONNX Runtime agrees with eager for N = 0, 1 and many persons."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from model.head import AIAHead

NAMES = ["person_feats", "person_batch", "object_feats", "object_mask", "memory",
         "memory_mask", "memory_seconds"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[AIAHead, ort.InferenceSession]:
    from model.config import preset

    torch.manual_seed(0)
    cfg = preset("tiny").replace(ia={"structure": "dense"})
    head = AIAHead(cfg).eval()
    with torch.no_grad():
        for p in head.parameters():
            p.normal_(0, 0.05)
    d = cfg.feature_dim
    example = (torch.randn(3, d), torch.tensor([0, 0, 1]), torch.randn(2, 2, d),
               torch.ones(2, 2, dtype=torch.bool), torch.randn(2, 4, d),
               torch.ones(2, 4, dtype=torch.bool), torch.tensor([[-2, -1, 1, 2]] * 2))
    n, b = torch.export.Dim("N", min=0), torch.export.Dim("B", min=1)
    o, m = torch.export.Dim("O", min=0), torch.export.Dim("M", min=0)
    dims = dict(zip(NAMES, [{0: n}, {0: n}, {0: b, 1: o}, {0: b, 1: o}, {0: b, 1: m},
                            {0: b, 1: m}, {0: b, 1: m}], strict=True))
    path = Path(tmp_path_factory.mktemp("onnx")) / "head.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(head, example, str(path), dynamo=True, input_names=NAMES,
                          output_names=["logits"], dynamic_shapes=dims)
    return head, ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize(
    ("persons", "objects", "memory"),
    [([0], [2], [4]), ([1], [0], [0]), ([3, 1, 2], [2, 0, 1], [6, 0, 3])],
)
def test_onnx_runtime_matches_eager(exported, persons, objects, memory) -> None:
    from tests.model.test_head import head_inputs

    head, session = exported
    cfg_like = type("Cfg", (), {"feature_dim": 320, "ia": head.cfg})
    inputs = head_inputs(cfg_like, persons, objects, memory)
    expected = head(*inputs).detach().numpy()
    got = session.run(None, {k: v.numpy() for k, v in zip(NAMES, inputs, strict=True)})[0]
    assert got.shape == expected.shape == (sum(persons), 80)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
