"""The shipped model (artifacts/aia-synth-tiny): intact, small, and as good as it says.

Its manifest records the validation mAP of the checkpoint it was exported from; here it is
scored through ONNX Runtime on a held-out synthetic set rendered with a seed that training
never used, by the same two-pass procedure.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exporters.artifact import load_artifact
from exporters.graphs import Format
from exporters.heldout import score_artifact
from model.config import preset
from model.synth.dataset import SynthSpec, write_dataset

SHIPPED = Path(__file__).resolve().parents[2] / "artifacts" / "aia-synth-tiny"
HELD_OUT_SEED = 424_242  # training data: seed 11 (see the manifest's training.commands)
HELD_OUT_VIDEOS = 10


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads((SHIPPED / "manifest.json").read_text())


def test_shipped_model_is_a_valid_small_artifact(manifest) -> None:
    artifact = load_artifact(SHIPPED, formats=["onnx", "torchscript"])
    size = sum(p.stat().st_size for p in SHIPPED.iterdir())
    assert size < 30 * 2**20, f"{size / 2**20:.1f} MB"
    assert artifact.config.backbone == preset("tiny").backbone
    training = manifest["training"]
    assert training["validation_map"] is not None
    assert training["validation_map"] > 0.3
    # the exact commands that made it: data, training, export
    assert any(c.startswith("aia synth ") for c in training["commands"])
    assert training["train_command"][:2] == ["aia", "train"]
    assert manifest["export"]["command"][:2] == ["aia", "export"]
    assert not Path(training["checkpoint"]).is_absolute()


def test_held_out_map_matches_the_manifest(manifest, tmp_path) -> None:
    assert f"--seed {HELD_OUT_SEED}" not in " ".join(manifest["training"]["commands"])
    spec = SynthSpec(tmp_path / "held-out", videos=HELD_OUT_VIDEOS, seconds=30,
                     seed=HELD_OUT_SEED, split_val=0.0)
    write_dataset(spec, workers=2, progress=False)
    found = score_artifact(SHIPPED, spec.out, split="train", fmt=Format.ONNX)
    recorded = manifest["training"]["validation_map"]
    overall = found.result.mean_ap
    print(f"held-out mAP {overall:.3f} (manifest {recorded:.3f}); {found.group_map}")
    assert overall >= recorded - 0.05, (overall, recorded, found.group_map)
