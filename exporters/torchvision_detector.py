"""A torchvision COCO detector weights file -> an ONNX detector under DETECTOR_CONTRACT.

Users download torchvision's published detection weights (e.g.
`fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth`, a plain state dict) to get real-world persons
and objects instead of the synthetic detector. The file says nothing about its architecture,
so the builder is recognised from the key set and tensor shapes: every supported builder is
built on the meta device (no memory, no download: weights=None, weights_backbone=None) and
compared. The network is then built on the CPU, loaded strictly, wrapped like our own
`FrameDetector` (uint8 [H,W,3] in; boxes in input pixels, scores, classes out; resize, score
threshold and NMS inside) and exported with the same TorchScript-based exporter as
exporters/detector.py, then checked against eager with ONNX Runtime.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision.models.detection as tv_detection
from torch import Tensor, nn
from torchvision.models._meta import _COCO_CATEGORIES

from exporters.artifact import DETECTOR_CONTRACT, file_record
from exporters.detector import check_parity as detector_parity
from exporters.detector import parity_frames, write_checked
from exporters.graphs import ExportError
from model.detector.network import FrameDetector

# Order matters for ties: the first of identically shaped builders wins unless the file name
# names another (fasterrcnn_mobilenet_v3_large_fpn and _320_fpn share every tensor).
BUILDERS = (
    "fasterrcnn_resnet50_fpn", "fasterrcnn_resnet50_fpn_v2",
    "fasterrcnn_mobilenet_v3_large_fpn", "fasterrcnn_mobilenet_v3_large_320_fpn",
    "retinanet_resnet50_fpn", "retinanet_resnet50_fpn_v2", "fcos_resnet50_fpn",
    "ssd300_vgg16", "ssdlite320_mobilenet_v3_large",
)
COCO_NUM_CLASSES = 91  # torchvision's COCO ids: 0 background, 1..90 with "N/A" gaps
PERSON_CLASS_ID = 1
TRAINED_ON = "COCO 2017 train (torchvision's published weights)"
# Looser than exporters/detector.py's 0.01 px / 1e-4: ResNet-50 FPN graphs at 800 px sum many
# more float32 terms, and ONNX Runtime fuses convolutions in another order than eager.
BOX_TOLERANCE_PX = 5e-2
SCORE_TOLERANCE = 1e-3
_SHOWN = 5  # keys listed per kind in a mismatch message
_BATCHES_TRACKED = "num_batches_tracked"


def coco_classes() -> dict[str, str]:
    """Manifest `classes`: torchvision's COCO ids -> names, without background and gaps."""
    return {str(i): name for i, name in enumerate(_COCO_CATEGORIES)
            if name not in ("__background__", "N/A")}


def build_model(builder: str, device: str | torch.device = "cpu") -> nn.Module:
    """A randomly initialised `builder` with COCO's 91 classes; never downloads anything."""
    if builder not in BUILDERS:
        raise ExportError(f"unknown torchvision detector builder {builder!r}; supported: "
                          f"{', '.join(BUILDERS)}")
    with torch.device(device):
        return getattr(tv_detection, builder)(weights=None, weights_backbone=None,
                                              num_classes=COCO_NUM_CLASSES)


def unwrap_state(loaded: Any, where: str) -> dict[str, Tensor]:
    """The tensors of a raw state dict, or of its "model"/"state_dict" entry (training
    checkpoints), with DataParallel's "module." prefixes stripped."""
    for key in ("model", "state_dict"):
        if isinstance(loaded, Mapping) and isinstance(loaded.get(key), Mapping):
            loaded = loaded[key]
            break
    if not isinstance(loaded, Mapping) or not loaded:
        raise ExportError(f"{where}: expected a state dict (name -> tensor), found "
                          f"{type(loaded).__name__}")
    state = {}
    for key, value in loaded.items():
        if not isinstance(value, Tensor):
            raise ExportError(f"{where}: entry {key!r} is {type(value).__name__}, not a tensor; "
                              "not a state dict")
        state[key.removeprefix("module.")] = value
    return state


def read_state(weights: Path) -> dict[str, Tensor]:
    """torch.load with weights_only=True: a downloaded file must not run code."""
    try:
        loaded = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors have no common base class
        raise ExportError(f"{weights}: cannot be read as torch weights: {err}") from None
    return unwrap_state(loaded, str(weights))


def _shapes(state: Mapping[str, Tensor]) -> dict[str, tuple[int, ...]]:
    """Key -> shape, without BatchNorm's step counters: published weights of builders that
    freeze BatchNorm when pretrained lack them, and a weights=None build has them."""
    return {k: tuple(v.shape) for k, v in state.items() if not k.endswith(_BATCHES_TRACKED)}


@functools.cache
def expected_shapes(builder: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of `builder`'s COCO network, built on the meta device; cached on first
    use (identify_builder compares against every builder, about 0.1 s each)."""
    return _shapes(build_model(builder, "meta").state_dict())


def _mismatch(expected: Mapping[str, tuple[int, ...]],
              found: Mapping[str, tuple[int, ...]]) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, reshaped) keys of `found` against `expected`."""
    missing = sorted(expected.keys() - found.keys())
    unexpected = sorted(found.keys() - expected.keys())
    reshaped = sorted(k for k in expected.keys() & found.keys() if expected[k] != found[k])
    return missing, unexpected, reshaped


def _break_tie(candidates: list[str], file_name: str) -> str:
    """Among builders with identical tensors: the one the file name names (longest first),
    else the `_320_` variant when the name says 320, else the first in BUILDERS."""
    name = file_name.lower()
    named = sorted((c for c in candidates if c in name), key=len, reverse=True)
    if named:
        return named[0]
    wants_320 = "320" in name
    fitting = [c for c in candidates if ("_320_" in c) == wants_320]
    return (fitting or candidates)[0]


def _listing(kind: str, keys: list[str]) -> str:
    more = f" (+{len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else ""
    return f"{kind} {keys[:_SHOWN]}{more}"


def identify_builder(state: Mapping[str, Tensor], file_name: str) -> str:
    """The torchvision builder whose COCO network has exactly these keys and shapes; the file
    name only breaks ties. ExportError with the closest builder's differences otherwise."""
    found = _shapes(unwrap_state(state, file_name))
    matches, closest = [], None
    for builder in BUILDERS:
        diff = _mismatch(expected_shapes(builder), found)
        if not any(diff):
            matches.append(builder)
        elif closest is None or sum(map(len, diff)) < sum(map(len, closest[1])):
            closest = (builder, diff)
    if matches:
        return _break_tie(matches, file_name)
    assert closest is not None
    builder, (missing, unexpected, reshaped) = closest
    details = "; ".join(_listing(kind, keys) for kind, keys in (
        ("missing", missing), ("unexpected", unexpected), ("shape differs", reshaped)) if keys)
    raise ExportError(f"{file_name}: not the state dict of a supported torchvision COCO "
                      f"detector ({', '.join(BUILDERS)}); closest is {builder}: {details}")


def load_weights(builder: str, state: Mapping[str, Tensor], where: str) -> nn.Module:
    """`builder` with `state` loaded strictly (BatchNorm step counters the file lacks are kept
    from the fresh build: eval mode never reads them)."""
    model = build_model(builder)
    full = dict(state)
    for key, value in model.state_dict().items():
        if key.endswith(_BATCHES_TRACKED):
            full.setdefault(key, value)
    try:
        model.load_state_dict(full, strict=True)
    except RuntimeError as err:
        raise ExportError(f"{where}: does not load into {builder}: {err}") from None
    return model.eval()


def configure(model: nn.Module, score_threshold: float, min_size: int | None = None,
              max_size: int | None = None, max_detections: int | None = None
              ) -> dict[str, Any]:
    """Set the in-graph score threshold, resize and detection cap; returns the manifest's
    nms_iou, max_detections and resize as the model now has them."""
    post = getattr(model, "roi_heads", model)  # Faster R-CNN keeps them in its RoI heads
    post.score_thresh = score_threshold
    if max_detections is not None:
        post.detections_per_img = max_detections
    transform = model.transform
    resize: dict[str, Any] = {"where": "inside"}
    if transform.fixed_size is not None:  # SSD: a fixed square, aspect ratio not kept
        if min_size is not None or max_size is not None:
            raise ExportError("SSD models resize every frame to a fixed "
                              f"{transform.fixed_size} square; min_size/max_size do not apply")
        resize["fixed_size"] = list(transform.fixed_size)
    if min_size is not None:
        transform.min_size = (min_size,)
    if max_size is not None:
        transform.max_size = max_size
    resize.update(min_size=int(transform.min_size[-1]), max_size=int(transform.max_size))
    return {"nms_iou": float(post.nms_thresh), "max_detections": int(post.detections_per_img),
            "resize": resize}


class CocoFrameDetector(FrameDetector):
    """FrameDetector that also drops detections of ids without a COCO name (background,
    "N/A"): heads that score all 91 ids (RetinaNet, FCOS, SSD) may emit them, and the
    contract says every class id has a name in the manifest."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__(detector)  # type: ignore[arg-type]  # any torchvision detector
        named = torch.zeros(COCO_NUM_CLASSES, dtype=torch.bool)
        named[[int(i) for i in coco_classes()]] = True
        self.register_buffer("named", named, persistent=False)

    def forward(self, frame: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        boxes, scores, classes = super().forward(frame)
        keep = self.named[classes]
        return boxes[keep], scores[keep], classes[keep]


def check_parity(module: nn.Module, path: Path, frames: list[np.ndarray]) -> dict[str, Any]:
    """The detector parity check at the bounds COCO networks need (0.05 px, 1e-3: deep
    backbones with many classes drift further than the synthetic detector's 0.01 / 1e-4)."""
    return detector_parity(module, path, frames, BOX_TOLERANCE_PX, SCORE_TOLERANCE)


def export_torchvision_detector(weights: str | Path, folder: str | Path, file_name: str,
                                score_threshold: float = 0.5, min_size: int | None = None,
                                max_size: int | None = None,
                                max_detections: int | None = None) -> dict[str, Any]:
    """Write FOLDER/FILE_NAME from a torchvision COCO weights file, check it against eager,
    and return the manifest's `detector` section (the caller lists the file's sha256 in
    `files`). min_size/max_size/max_detections default to the builder's. ExportError if the
    file is no supported detector or parity fails (the written file is then deleted)."""
    weights, folder = Path(weights), Path(folder)
    state = read_state(weights)
    builder = identify_builder(state, weights.name)
    model = load_weights(builder, state, str(weights))
    settings = configure(model, score_threshold, min_size, max_size, max_detections)
    module = CocoFrameDetector(model).eval()
    folder.mkdir(parents=True, exist_ok=True)
    seconds, report = write_checked(module, folder / file_name, parity_frames(), check_parity)
    return {
        "file": file_name, "contract": DETECTOR_CONTRACT, "trained_on": TRAINED_ON,
        "classes": coco_classes(),
        "person_class_id": PERSON_CLASS_ID, "score_threshold": score_threshold, **settings,
        "parity": report, "export_seconds": round(seconds, 2),
        "source": {"kind": "torchvision", "builder": builder, "file": weights.name,
                   "sha256": file_record(weights)["sha256"], "trained_on": TRAINED_ON},
    }
