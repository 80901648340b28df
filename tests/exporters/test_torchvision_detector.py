"""exporters/torchvision_detector.py: a torchvision COCO weights file -> detector ONNX under
aia-detector/1, recognised from its tensors, checked against eager, and usable through the
artifact loader and the runtime. Nothing is downloaded: the "published" files here are
weights=None builds saved under the published file names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.models import resnet18

import exporters.torchvision_detector as tvd
from exporters.artifact import DETECTOR_CONTRACT, DetectorSpec, file_record
from exporters.detector import parity_frames
from exporters.detector_runtime import DetectorRunner
from exporters.graphs import ExportError

SSDLITE = "ssdlite320_mobilenet_v3_large"
MOBILE = "fasterrcnn_mobilenet_v3_large_fpn"
MOBILE_320 = "fasterrcnn_mobilenet_v3_large_320_fpn"
# builder -> published file name, export keywords (small resizes keep the exports fast; SSD
# resizes to its fixed square), whether the file keeps BatchNorm's num_batches_tracked
# (torchvision's ssdlite file does; builders that freeze BatchNorm when pretrained don't).
# Thresholds: low, so every frame has detections to compare, yet above the dense band of
# near-equal scores where a 1e-6 difference decides the last detections kept.
CASES: dict[str, tuple[str, dict[str, Any], bool]] = {
    SSDLITE: ("ssdlite320_mobilenet_v3_large_coco-a79551df.pth", {"score_threshold": 0.0},
              True),
    MOBILE_320: ("fasterrcnn_mobilenet_v3_large_320_fpn-907ea3f9.pth",
                 {"score_threshold": 0.25, "min_size": 160, "max_size": 256}, False),
}


def _calibrated(model: nn.Module) -> nn.Module:
    """Random weights made to behave like trained ones. Random-init BatchNorm statistics
    (mean 0, var 1) make activations vanish through a deep backbone, so every detection gets
    the same score: one training-mode pass over synthetic frames sets real statistics. Faster
    R-CNN's random classifiers score every class near 1/91: sharper logits spread the scores,
    so the kept detections do not hinge on float noise."""
    if hasattr(model, "roi_heads"):
        with torch.no_grad():
            model.roi_heads.box_predictor.cls_score.weight.mul_(10.0)
            model.rpn.head.cls_logits.weight.mul_(10.0)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the pass
    images = [torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in parity_frames()]
    target = {"boxes": torch.tensor([[10.0, 10.0, 60.0, 90.0]]), "labels": torch.tensor([1])}
    model.train()
    with torch.no_grad():
        model(images, [target] * len(images))
    return model.eval()


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Builder -> a weights file saved under its published name, in the published form."""
    folder = tmp_path_factory.mktemp("published")
    files = {}
    for builder, (file_name, _, keeps_counters) in CASES.items():
        torch.manual_seed(3)
        state = _calibrated(tvd.build_model(builder)).state_dict()
        if not keeps_counters:
            state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
        torch.save(state, folder / file_name)
        files[builder] = folder / file_name
    return files


@pytest.fixture(scope="module", params=sorted(CASES))
def exported(request: pytest.FixtureRequest, published: dict[str, Path],
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    builder = request.param
    folder = tmp_path_factory.mktemp(builder)
    section = tvd.export_torchvision_detector(published[builder], folder, "detector.onnx",
                                              **CASES[builder][1])
    return {"builder": builder, "weights": published[builder], "folder": folder,
            "section": section}


def test_export_recognises_the_builder_and_checks_parity(exported: dict[str, Any]) -> None:
    weights, section = exported["weights"], exported["section"]
    assert tvd.identify_builder(tvd.read_state(weights), weights.name) == exported["builder"]
    assert (exported["folder"] / "detector.onnx").is_file()
    assert section["file"] == "detector.onnx"
    assert section["contract"] == DETECTOR_CONTRACT
    assert section["parity"]["passed"]
    assert section["parity"]["detections"] > 0
    assert section["person_class_id"] == 1
    assert len(section["classes"]) == 80
    assert section["classes"]["1"] == "person"
    assert "N/A" not in section["classes"].values()
    assert section["score_threshold"] == CASES[exported["builder"]][1]["score_threshold"]
    assert section["source"] == {
        "kind": "torchvision", "builder": exported["builder"], "file": weights.name,
        "sha256": file_record(weights)["sha256"], "trained_on": tvd.TRAINED_ON}


def test_onnx_matches_eager_on_a_frame_of_another_size(exported: dict[str, Any]) -> None:
    weights = exported["weights"]
    model = tvd.load_weights(exported["builder"], tvd.read_state(weights), str(weights))
    tvd.configure(model, **CASES[exported["builder"]][1])
    frames = parity_frames(((288, 224),))  # portrait; the export traced 192x128
    report = tvd.check_parity(tvd.CocoFrameDetector(model), exported["folder"] / "detector.onnx",
                              frames)
    assert report["passed"], report["failures"]
    assert report["detections"] > 0


def test_the_section_loads_and_runs_through_the_artifact_code(exported: dict[str, Any]) -> None:
    folder, section = exported["folder"], exported["section"]
    files = {section["file"]: file_record(folder / section["file"])}
    spec = DetectorSpec.from_manifest(folder, section, files)
    assert spec.person_class_id == 1
    assert spec.classes[1] == "person"
    found = DetectorRunner(spec)(parity_frames(((240, 160),))[0])
    boxes = np.concatenate([found.person_boxes, found.object_boxes])
    assert len(boxes) > 0
    assert boxes.dtype == np.float32
    assert boxes.shape[1] == 4
    assert (boxes >= 0).all()
    assert (boxes <= 1).all()
    assert (boxes[:, 2:] >= boxes[:, :2]).all()
    assert set(found.object_classes.tolist()) <= {int(k) for k in section["classes"]}


def _meta_state(builder: str) -> dict[str, torch.Tensor]:
    """Key names and shapes only: enough for identify_builder, and instant."""
    return tvd.build_model(builder, "meta").state_dict()


def test_identical_mobilenet_weights_are_told_apart_by_the_file_name() -> None:
    state = _meta_state(MOBILE)
    assert tvd.identify_builder(state, "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth") == MOBILE
    assert tvd.identify_builder(state, CASES[MOBILE_320][0]) == MOBILE_320
    assert tvd.identify_builder(state, "detector.pth") == MOBILE


def test_retinanet_v2_is_recognised_with_or_without_batchnorm_counters() -> None:
    state = _meta_state("retinanet_resnet50_fpn_v2")
    name = "retinanet_resnet50_fpn_v2_coco-5905b1c5.pth"
    assert tvd.identify_builder(state, name) == "retinanet_resnet50_fpn_v2"
    frozen = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    assert tvd.identify_builder(frozen, "weights.pth") == "retinanet_resnet50_fpn_v2"


def test_a_missing_or_renamed_tensor_is_named(published: dict[str, Path],
                                              tmp_path: Path) -> None:
    weights = published[SSDLITE]
    state = tvd.read_state(weights)
    key = sorted(k for k in state if k.endswith(".weight"))[-1]
    removed = tmp_path / weights.name
    torch.save({k: v for k, v in state.items() if k != key}, removed)
    with pytest.raises(ExportError, match=re.escape(f"missing ['{key}']")) as err:
        tvd.export_torchvision_detector(removed, tmp_path / "out", "detector.onnx")
    assert SSDLITE in str(err.value)  # the closest candidate
    assert not (tmp_path / "out" / "detector.onnx").exists()
    renamed = {("renamed." + k if k == key else k): v for k, v in state.items()}
    with pytest.raises(ExportError, match=re.escape(f"unexpected ['renamed.{key}']")):
        tvd.identify_builder(renamed, weights.name)


def test_a_non_detector_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="not the state dict of a supported torchvision"):
        tvd.identify_builder(resnet18(weights=None).state_dict(), "resnet18-f37072fd.pth")
    junk = tmp_path / "notes.pth"
    torch.save(["not", "a", "state dict"], junk)
    with pytest.raises(ExportError, match=r"notes\.pth: expected a state dict"):
        tvd.export_torchvision_detector(junk, tmp_path, "detector.onnx")
    text = tmp_path / "readme.pth"
    text.write_text("hello")
    with pytest.raises(ExportError, match=r"readme\.pth: cannot be read"):
        tvd.export_torchvision_detector(text, tmp_path, "detector.onnx")


def test_training_checkpoints_and_data_parallel_prefixes_are_unwrapped() -> None:
    tensor = torch.zeros(2)
    wrapped = {"model": {"module.head.weight": tensor}, "epoch": 3}
    assert tvd.unwrap_state(wrapped, "x") == {"head.weight": tensor}
    assert tvd.unwrap_state({"state_dict": {"a": tensor}}, "x") == {"a": tensor}


def test_a_failed_parity_check_deletes_the_file(published: dict[str, Path], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import exporters.detector

    monkeypatch.setattr(exporters.detector, "write_onnx",
                        lambda module, path: path.write_bytes(b"graph"))
    monkeypatch.setattr(tvd, "check_parity", lambda *args: {
        "passed": False, "failures": ["frame 0: 3 detections vs eager 4"]})
    with pytest.raises(ExportError, match="parity failed: frame 0"):
        tvd.export_torchvision_detector(published[SSDLITE], tmp_path, "detector.onnx")
    assert not (tmp_path / "detector.onnx").exists()


def test_ssd_refuses_a_resize_it_cannot_apply() -> None:
    model = tvd.build_model(SSDLITE, "meta")
    with pytest.raises(ExportError, match="fixed"):
        tvd.configure(model, 0.5, 160, None, None)
    settings = tvd.configure(model, 0.4, None, None, 10)
    assert model.score_thresh == 0.4
    assert settings["max_detections"] == 10
    assert settings["resize"]["fixed_size"] == [320, 320]
