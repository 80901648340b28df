"""`aia artifact`: detectors added to an exported artifact (the real person detector, a
torchvision COCO detector whose objects reach the O blocks), the dataset recorded, and a
failed edit leaving the artifact as it was."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from prometheus_client import CollectorRegistry

import exporters.torchvision_detector as tvd
from cli.main import main
from exporters.artifact import MANIFEST, ArtifactError, load_artifact, sha256
from exporters.artifact_edit import add_detector, set_dataset
from exporters.detector_runtime import DetectorRunner
from exporters.graphs import ExportError
from service.batcher import Batcher
from service.metrics import Metrics
from service.params import CostBounds, detect_params
from service.runtime import load_runtime
from service.settings import Device, RuntimeKind, Settings
from service.stages import ServedModel
from service.state import build_engine, load_detector, model_ref
from service.store import LocalStore
from tests.exporters.test_torchvision_detector import _calibrated
from tests.real_footage import video_path
from tests.service.clips import write_clip

COCO_FILE = "ssdlite320_mobilenet_v3_large_coco-a79551df.pth"
COCO_NAME = "coco-ssdlite320_mobilenet_v3_large"


@pytest.fixture(scope="module")
def edited(random_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The random test artifact with the real person detector and a COCO detector added
    through the command line, then its dataset recorded."""
    folder = tmp_path_factory.mktemp("edited")
    torch.manual_seed(3)
    weights = folder / COCO_FILE
    torch.save(_calibrated(tvd.build_model("ssdlite320_mobilenet_v3_large")).state_dict(),
               weights)
    out = folder / "artifact"
    shutil.copytree(random_artifact, out)
    assert main(["artifact", "add-detector", str(out), "ssdlite-person"]) == 0
    assert main(["artifact", "add-detector", str(out), str(weights), "--score-threshold",
                 "0.05", "--default"]) == 0
    assert main(["artifact", "set-dataset", str(out), "--name", "ava-v2.2", "--label-set",
                 "ava-v2.2-80", "--real-footage"]) == 0
    return out


def test_the_artifact_lists_its_detectors(edited: Path) -> None:
    artifact = load_artifact(edited)
    assert sorted(artifact.detectors) == [COCO_NAME, "ssdlite-person"]
    assert artifact.default_detector == COCO_NAME
    coco = artifact.detectors[COCO_NAME]
    assert coco.classes[1] == "person"
    assert len(coco.classes) == 80
    assert coco.trained_on.startswith("COCO")
    assert artifact.detectors["ssdlite-person"].classes == {1: "person"}
    assert artifact.dataset.name == "ava-v2.2"
    assert artifact.dataset.real_footage
    edits = artifact.manifest["edits"]
    assert [e["command"][2] for e in edits] == ["add-detector", "add-detector", "set-dataset"]
    assert artifact.manifest["edits"][1]["command"][-2:] == ["0.05", "--default"]


def test_choosing_a_detector_by_name(edited: Path) -> None:
    artifact = load_artifact(edited)
    assert artifact.choose_detector(None) is artifact.detectors[COCO_NAME]
    assert artifact.choose_detector("ssdlite-person").name == "ssdlite-person"
    with pytest.raises(ArtifactError, match=r"no detector 'yolo'.*coco-ssdlite320"):
        artifact.choose_detector("yolo")


def test_a_failed_edit_changes_nothing(edited: Path) -> None:
    before = sha256(edited / MANIFEST)
    files = sorted(p.name for p in edited.iterdir())
    with pytest.raises(ExportError, match="already has a detector 'ssdlite-person'"):
        add_detector(edited, "ssdlite-person")
    with pytest.raises(ExportError, match="no such file"):
        add_detector(edited, "missing.pth")
    with pytest.raises(ExportError, match="detector name"):
        add_detector(edited, "Bad Name!=ssdlite-person")
    assert sha256(edited / MANIFEST) == before
    assert sorted(p.name for p in edited.iterdir()) == files
    assert not list(edited.parent.glob(".artifact.*"))  # no temp copy left behind


def test_a_broken_artifact_is_not_edited(edited: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(edited, copy)
    (copy / "head.onnx").write_bytes(b"changed")
    with pytest.raises(ArtifactError, match=r"head\.onnx"):
        set_dataset(copy, "x", "y", True)


def test_an_old_single_detector_section_reads_as_synthetic(edited: Path, tmp_path: Path
                                                           ) -> None:
    copy = tmp_path / "old"
    shutil.copytree(edited, copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["detector"] = manifest.pop("detectors")["ssdlite-person"]
    manifest.pop("default_detector")
    (copy / MANIFEST).write_text(json.dumps(manifest))
    artifact = load_artifact(copy)
    assert list(artifact.detectors) == ["synthetic"]
    assert artifact.detector is artifact.detectors["synthetic"]


def test_coco_objects_reach_the_engine(edited: Path, tmp_path: Path) -> None:
    """A COCO detector finds persons and objects; served, its objects fill the O slots."""
    artifact = load_artifact(edited, ("onnx",))
    spec = artifact.choose_detector(COCO_NAME)
    assert spec is not None
    found = DetectorRunner(spec)(_frame())
    assert len(found.object_boxes) > 0
    assert set(found.object_classes.tolist()) <= set(spec.classes) - {1}
    settings = Settings(runtime=RuntimeKind.onnx, device=Device.cpu, detector=COCO_NAME)
    runtime = load_runtime(artifact, settings.runtime, settings.device)
    batcher = Batcher(runtime, 8, max_wait_ms=2, queue_size=16)
    served = ServedModel(artifact, model_ref(artifact, "onnx", "cpu", COCO_NAME), batcher,
                         load_detector(artifact, "cpu", COCO_NAME))
    engine = build_engine(settings, served, LocalStore("v", 60, 600, 10),
                          Metrics(CollectorRegistry()))
    seen: list[int] = []
    original = engine.stages.features

    async def spy(stream, frames, timings):
        found, persons, objects = await original(stream, frames, timings)
        seen.extend(len(boxes) for boxes in found.objects)
        return found, persons, objects

    engine.stages.features = spy  # type: ignore[method-assign]
    params = detect_params({"min_score": "0"}, artifact.labels,
                           CostBounds.from_settings(settings))

    async def run() -> dict[str, object]:
        try:
            return json.loads((await engine.detect(write_clip(tmp_path), params, "v")).body)
        finally:
            await batcher.close()

    body = asyncio.run(run())
    assert body["model"]["detector"] == COCO_NAME  # type: ignore[index]
    assert body["persons_from"] == "detector"
    assert sum(seen) > 0, "the detector's objects go to graph 1 and the O blocks"


def _frame() -> object:
    import av

    with av.open(str(video_path("bikes.mp4"))) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == 125:
                return frame.to_ndarray(format="rgb24")
    raise AssertionError("bikes.mp4 has a frame 125")


def test_regraph_exports_the_same_weights_with_this_code(random_artifact: Path,
                                                        tmp_path: Path) -> None:
    """`aia artifact regraph`: graph files from the artifact's own weights, parity recorded,
    the edit logged."""
    from exporters.artifact import onnx_session
    from exporters.artifact_edit import regraph

    root = tmp_path / "artifact"
    shutil.copytree(random_artifact, root)
    before = load_artifact(root)
    old_session = onnx_session(before.path("features", "onnx"))
    rng = np.random.default_rng(0)
    feed = {"clip": rng.integers(0, 256, (2, before.input.frames, 48, 64, 3), dtype=np.uint8),
            "boxes": np.array([[0, 4, 4, 30, 40], [1, 10, 2, 60, 44.0]], np.float32)}
    expected = old_session.run(None, feed)[0]
    old_sha = sha256(before.path("features", "onnx"))
    manifest = regraph(root)
    after = load_artifact(root)
    assert manifest["edits"][-1]["command"][:3] == ["aia", "artifact", "regraph"]
    assert manifest["parity"]["passed"] is True
    # exported from the checkpoint by this code, then again from its TorchScript weights:
    # the same file, byte for byte (the weights travel exactly, the export is deterministic)
    assert sha256(after.path("features", "onnx")) == old_sha
    found = onnx_session(after.path("features", "onnx")).run(None, feed)[0]
    np.testing.assert_array_equal(found, expected)


def test_regraph_without_torchscript_changes_nothing(random_artifact: Path,
                                                     tmp_path: Path) -> None:
    from exporters.artifact_edit import regraph

    root = tmp_path / "onnx-only"
    shutil.copytree(random_artifact, root)
    manifest = json.loads((root / MANIFEST).read_text())
    for graph in ("features", "head"):
        (root / manifest["graphs"][graph]["files"].pop("torchscript")).unlink()
    manifest["files"] = {k: v for k, v in manifest["files"].items() if not k.endswith(".pt")}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    untouched = (root / MANIFEST).read_bytes()
    with pytest.raises(ArtifactError, match=r"(?i)torchscript"):
        regraph(root)
    assert (root / MANIFEST).read_bytes() == untouched
