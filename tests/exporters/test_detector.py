"""detector.onnx: export with parity, the manifest's detector section, the loader's checks,
and the runtime that the engine calls."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from exporters.artifact import DETECTOR_CONTRACT, MANIFEST, ArtifactError, load_artifact
from exporters.detector import export_detector, parity_frames
from exporters.detector_runtime import DetectorRunner, user_detector
from exporters.export import ExportOptions, export_artifact
from exporters.graphs import ExportError, Format
from model.detector.checkpoint import save_detector
from model.detector.config import DetectorConfig
from model.detector.network import build_detector

# random weights and no score threshold: every frame has detections to compare
TINY = DetectorConfig(widths=(8, 8, 16, 16), fpn_channels=16, head_channels=32,
                      score_threshold=0.0, max_detections=20)


@pytest.fixture(scope="module")
def detector_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(1)
    return save_detector(tmp_path_factory.mktemp("det") / "detector.pt", TINY,
                         build_detector(TINY), step=7, command="aia train-detector (test)")


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory, checkpoint: Path,
             detector_ckpt: Path) -> Path:
    """An action artifact exported from a folder that also holds detector.pt."""
    folder = tmp_path_factory.mktemp("ckpts")
    shutil.copy(checkpoint, folder / "action.pt")
    shutil.copy(detector_ckpt, folder / "detector.pt")
    out = folder.parent / f"{folder.name}-artifact"
    export_artifact(folder / "action.pt", out, ExportOptions(formats=(Format.TORCHSCRIPT,)))
    return out


def test_export_detector_checks_parity(detector_ckpt: Path, tmp_path: Path) -> None:
    section = export_detector(detector_ckpt, tmp_path)
    assert (tmp_path / "detector.onnx").is_file()
    assert section["parity"]["passed"]
    assert section["parity"]["detections"] > 0
    assert section["parity"]["max_abs_box_px"] < 1e-2
    assert section["classes"] == {"1": "person", "2": "box", "3": "ball"}
    assert section["person_class_id"] == 1
    assert section["contract"] == DETECTOR_CONTRACT
    assert section["training"]["step"] == 7


def test_artifact_carries_a_hash_checked_detector(artifact: Path) -> None:
    loaded = load_artifact(artifact, ["torchscript"])
    assert loaded.detector is not None
    assert loaded.detector.path == artifact / "detector-synthetic.onnx"
    assert loaded.detector.name == loaded.default_detector == "synthetic"
    assert loaded.detector.person_class_id == 1
    assert loaded.detector.classes[3] == "ball"
    assert loaded.detector.trained_on.startswith("synthetic-interactions")
    manifest = json.loads((artifact / MANIFEST).read_text())
    assert "detector-synthetic.onnx" in manifest["files"]
    assert manifest["detectors"]["synthetic"]["resize"]["min_size"] == TINY.min_size


def test_a_modified_detector_graph_is_refused(artifact: Path, tmp_path: Path) -> None:
    copy = tmp_path / "artifact"
    shutil.copytree(artifact, copy)
    with (copy / "detector-synthetic.onnx").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ArtifactError, match=r"detector-synthetic\.onnx"):
        load_artifact(copy)
    manifest = json.loads((artifact / MANIFEST).read_text())
    manifest["detectors"]["synthetic"]["person_class_id"] = 9
    shutil.copy(artifact / "detector-synthetic.onnx", copy / "detector-synthetic.onnx")
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="person_class_id 9"):
        load_artifact(copy)


def test_an_artifact_without_detector_loads_as_before(ts_artifact: Path) -> None:
    assert load_artifact(ts_artifact).detector is None


def test_runner_gives_normalised_boxes_split_by_class(artifact: Path) -> None:
    spec = load_artifact(artifact).detector
    assert spec is not None
    runner = DetectorRunner(spec)
    frame = parity_frames(((192, 128),))[0]
    found = runner(frame)
    everything = np.concatenate([found.person_boxes, found.object_boxes])
    assert len(everything) > 0
    assert everything.min() >= 0.0
    assert everything.max() <= 1.0
    assert set(found.object_classes.tolist()) <= {2, 3}
    assert np.all(np.diff(found.person_scores) <= 0)  # best first
    strict = DetectorRunner(spec, min_score=1.01)(frame)
    assert len(strict.person_boxes) + len(strict.object_boxes) == 0
    with pytest.raises(ValueError, match="uint8"):
        runner(frame.astype(np.float32))
    mine = user_detector(spec.path, {1: "person", 2: "box", 3: "ball"}, person_class_id=1)
    assert len(DetectorRunner(mine)(frame).person_boxes) == len(found.person_boxes)


def test_export_names_its_detectors(checkpoint: Path, detector_ckpt: Path,
                                    tmp_path: Path) -> None:
    """`aia export --detector NAME=SOURCE ... --default-detector NAME`."""
    out = tmp_path / "named"
    options = ExportOptions(formats=(Format.TORCHSCRIPT,), detectors=(
        f"mine={detector_ckpt}", f"other={detector_ckpt}"), default_detector="other")
    export_artifact(checkpoint, out, options)
    artifact = load_artifact(out)
    assert sorted(artifact.detectors) == ["mine", "other"]
    assert artifact.default_detector == "other"
    assert artifact.detectors["mine"].path == out / "detector-mine.onnx"
    twice = ExportOptions(formats=(Format.TORCHSCRIPT,),
                          detectors=(str(detector_ckpt), str(detector_ckpt)))
    with pytest.raises(ExportError, match="named alike"):
        export_artifact(checkpoint, tmp_path / "twice", twice)
    wrong = ExportOptions(formats=(Format.TORCHSCRIPT,), detectors=(str(detector_ckpt),),
                          default_detector="nope")
    with pytest.raises(ExportError, match="'nope' is not among"):
        export_artifact(checkpoint, tmp_path / "wrong", wrong)
    assert not (tmp_path / "twice").exists()
    assert not (tmp_path / "wrong").exists()
