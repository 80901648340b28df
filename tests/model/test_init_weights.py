"""PySlowFast's Kinetics checkpoints as initial backbone weights (`model.init`): every tensor
of the published layouts placed (key names, shapes and Caffe2 blob names recorded by running
PySlowFast: tests/data/pyslowfast/), .pyth and .pkl read, anything else refused by name."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from model.config import preset
from model.init_weights import (
    InitWeightsError,
    backbone_from_pyslowfast,
    caffe2_key,
    read_caffe2,
)
from model.network import AIA
from model.train.loop import load_initial_weights

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "pyslowfast"
LAYOUTS = {"SLOWFAST_4x16_R50": preset("r50_4x16"),
           "SLOWFAST_8x8_R50": preset("r50_4x16").replace(input={"alpha": 4},
                                                         backbone={"lateral_kernel": 7}),
           "SLOWFAST_8x8_R101_101_101": preset("r101_8x8")}


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"keys-{name}.json").read_text())


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_caffe2_blob_names_give_pyslowfast_keys(name: str) -> None:
    blobs = {key: blob for key, blob in fixture(name)["caffe2_blobs"].items() if blob}
    assert len(blobs) > 500
    assert {key: caffe2_key(blob) for key, blob in blobs.items()} == {k: k for k in blobs}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_every_backbone_tensor_is_placed(name: str) -> None:
    state = {k: torch.zeros(shape) for k, shape in fixture(name)["keys"].items()}
    with torch.device("meta"):
        ours = AIA(LAYOUTS[name]).state_dict()
    placed = backbone_from_pyslowfast(state, ours)
    assert set(placed) == {k for k in ours if k.startswith("features.backbone.")}


def test_a_lateral_kernel_that_does_not_fit_is_refused() -> None:
    state = {k: torch.zeros(s) for k, s in fixture("SLOWFAST_8x8_R50")["keys"].items()}
    with torch.device("meta"):
        ours = AIA(preset("r50_4x16")).state_dict()  # lateral kernel 5, the file has 7
    with pytest.raises(InitWeightsError, match=r"4 misshapen.*s1_fuse\.conv_f2s"):
        backbone_from_pyslowfast(state, ours)


def pyslowfast_keys(model: AIA) -> dict[str, torch.Tensor]:
    """Our tiny backbone under PySlowFast's names (the inverse of the mapping), random."""
    out = {}
    for key, value in model.state_dict().items():
        rename = [(r"features\.backbone\.(slow|fast)_stem\.0\.", r"s1.pathway{p}_stem.conv."),
                  (r"features\.backbone\.(slow|fast)_stem\.1\.", r"s1.pathway{p}_stem.bn.")]
        path = "0" if ".slow_" in key else "1"
        new = None
        for pattern, target in rename:
            if re.match(pattern, key):
                new = re.sub(pattern + r"(\w+)", target.format(p=path) + r"\2", key)
        if m := re.fullmatch(r"features\.backbone\.laterals\.(\d)\.(conv|norm)\.(\w+)", key):
            new = f"s{int(m.group(1)) + 1}_fuse.{'conv_f2s' if m.group(2) == 'conv' else 'bn'}"
            new += f".{m.group(3)}"
        if m := re.fullmatch(r"features\.backbone\.(slow|fast)_stages\.(\d)\.(\d+)\."
                             r"(shortcut|a|b|c)\.([01])\.(\w+)", key):
            branch = "branch1" if m.group(4) == "shortcut" else f"branch2.{m.group(4)}"
            new = (f"s{int(m.group(2)) + 2}.pathway{path}_res{m.group(3)}.{branch}"
                   f"{'_bn' if m.group(5) == '1' else ''}.{m.group(6)}")
        if new is not None:
            out[new] = torch.randn(value.shape) if value.is_floating_point() else value
    return out


def test_model_init_reads_a_pyth_checkpoint(tmp_path: Path) -> None:
    cfg = preset("tiny")
    source, target = AIA(cfg), AIA(cfg)
    state = pyslowfast_keys(source)
    state["head.projection.weight"] = torch.zeros(400, 8)  # the Kinetics classifier: skipped
    path = tmp_path / "SLOWFAST_tiny.pyth"
    torch.save({"model_state": state, "epoch": 196}, path)
    load_initial_weights(target, str(path))
    torch.testing.assert_close(target.features.backbone.laterals[2].conv.weight,
                               state["s3_fuse.conv_f2s.weight"])
    torch.testing.assert_close(target.features.backbone.fast_stages[1][0].b[1].running_var,
                               state["s3.pathway1_res0.branch2.b_bn.running_var"])


def test_caffe2_pickles_hold_arrays_only(tmp_path: Path) -> None:
    weights = np.arange(6, dtype=np.float32).reshape(2, 3)
    good = tmp_path / "good.pkl"
    with open(good, "wb") as handle:
        pickle.dump({"blobs": {"res2_0_branch2a_w": weights, "model_iter": np.array(1)}},
                    handle)
    state = read_caffe2(good)
    np.testing.assert_array_equal(state["s2.pathway0_res0.branch2.a.weight"].numpy(), weights)
    evil = tmp_path / "evil.pkl"
    with open(evil, "wb") as handle:
        pickle.dump({"blobs": {"x": Path("/etc")}}, handle)
    with pytest.raises(InitWeightsError, match="numpy arrays only"):
        read_caffe2(evil)
