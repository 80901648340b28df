"""Reading an exported artifact directory: the service's only entry point
(docs/architecture.md, "artifacts").

`load_artifact(DIR)` checks the manifest's format version, the size and sha256 of every file
it lists and that its config, labels and input spec agree, then returns them with the graph
paths. Anything wrong raises `ArtifactError` naming the file. Nothing here imports the
exporters, so the service loads an artifact without torch.onnx or a checkpoint.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from model.config import ConfigError, ModelConfig, from_dict
from model.labels import Label
from model.memory_window import MemoryWindow
from model.records import flat_from_dict

FORMAT = "aia-artifact/1"
MANIFEST = "manifest.json"
MIN_SIDE = 32  # smallest resized frame side the features graph accepts (2x backbone stride)
GRAPHS = ("features", "head")
FORMATS = ("onnx", "torchscript")
DTYPES = ("fp32", "fp16")
REQUIRED = ("format", "model_config", "labels", "input", "dtype", "graphs", "files",
            "training", "parity")
_CHUNK = 1 << 20
# detector.onnx (or a user's detector): input "frame" uint8 [H,W,3] RGB, any size; outputs
# boxes [K,4] float32 x1,y1,x2,y2 in the frame's pixels, scores [K] float32, classes [K] int64;
# score threshold and NMS inside the graph (docs/detector.md)
DETECTOR_CONTRACT = "aia-detector/1"


class ArtifactError(RuntimeError):
    """An artifact that must not be served; the message starts with the offending file."""


@dataclass(frozen=True)
class InputSpec:
    """What the service must do before graph 1 and around graph 2; all from the config."""

    frames: int  # the clip holds `frames` frames at `fps`, the key frame at frames // 2
    fps: float
    fast_stride: int  # sampling inside the graph, for information
    alpha: int
    short_side: int  # resize: scale = min(short_side / short, max_long_side / long)
    max_long_side: int
    min_side: int  # a resized side below this must be padded (bottom/right) first
    mean: tuple[float, float, float]  # RGB 0-255; applied inside graph 1
    std: tuple[float, float, float]
    test_box_enlarge: tuple[float, float]  # person boxes grow by (w, h) fractions at test time
    memory_before: int  # memory window: whole seconds before / after the key frame
    memory_after: int
    persons_per_second: int  # memory slots per second
    max_persons: int
    max_objects: int  # object slots per clip, highest detector score first
    feature_dim: int
    num_classes: int

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> InputSpec:
        i, ia = cfg.input, cfg.ia
        return cls(i.frames, i.fps, i.fast_stride, i.alpha, i.short_side, i.max_long_side,
                   MIN_SIDE, i.mean, i.std, cfg.roi.test_enlarge, ia.memory_before,
                   ia.memory_after, ia.persons_per_second, ia.max_persons, ia.max_objects,
                   cfg.feature_dim, cfg.classifier.num_classes)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std),
                "test_box_enlarge": list(self.test_box_enlarge), "channels": "RGB",
                "clip_layout": "uint8 [B, frames, H, W, 3]",
                "boxes": "[K, 5]: clip index, x1, y1, x2, y2 in pixels of the resized clip"}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputSpec:
        return flat_from_dict(cls, data, skip_unknown=True)  # beside the fields: descriptions

    def resized(self, width: int, height: int) -> tuple[int, int, float]:
        """(width, height, scale) of a `width` x `height` frame after the resize rule."""
        scale = min(self.short_side / min(width, height),
                    self.max_long_side / max(width, height))
        return max(1, round(width * scale)), max(1, round(height * scale)), scale

    @property
    def window(self) -> MemoryWindow:
        return MemoryWindow(self.memory_before, self.memory_after, self.persons_per_second)


@dataclass(frozen=True)
class DetectorSpec:
    """A detector graph under DETECTOR_CONTRACT and what its outputs mean."""

    path: Path
    classes: Mapping[int, str]  # class id -> name
    person_class_id: int
    score_threshold: float  # applied inside the graph; callers may filter higher
    min_size: int | None = None  # the graph resizes frames to this short side (informational)
    name: str = "detector"  # its key in the manifest's `detectors`
    trained_on: str = "unknown"  # what its weights learnt from (the manifest's `trained_on`)

    @classmethod
    def from_manifest(cls, root: Path, entry: Any, files: Mapping[str, Any],
                      name: str = "detector") -> DetectorSpec:
        where, key = root / MANIFEST, f"detectors.{name}"
        if not isinstance(entry, Mapping):
            raise ArtifactError(f"{where}: {key}: expected an object")
        if entry.get("contract") != DETECTOR_CONTRACT:
            raise ArtifactError(f"{where}: {key}.contract {entry.get('contract')!r}; this "
                                f"loader reads {DETECTOR_CONTRACT!r}")
        path = _member(root, entry.get("file"), f"{key}.file")
        if entry["file"] not in files:
            raise ArtifactError(f"{path}: not covered by the sha256 list of {MANIFEST}")
        try:
            classes = {int(k): str(v) for k, v in entry["classes"].items()}
            spec = cls(path, classes, int(entry["person_class_id"]),
                       float(entry["score_threshold"]), (entry.get("resize") or {}).get(
                           "min_size"), name, str(entry.get("trained_on", "unknown")))
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ArtifactError(f"{where}: {key}: needs classes, person_class_id, "
                                f"score_threshold: {err}") from None
        if spec.person_class_id not in classes:
            raise ArtifactError(f"{where}: {key}.person_class_id {spec.person_class_id} is "
                                f"not among its classes {sorted(classes)}")
        return spec


def manifest_detectors(data: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The manifest's detector sections by name and the default one's name. An artifact
    exported before detectors had names carries one `detector` section: it is "synthetic"."""
    if data.get("detectors") is not None:
        detectors = data["detectors"]
        default = data.get("default_detector")
    elif data.get("detector") is not None:
        detectors, default = {"synthetic": data["detector"]}, "synthetic"
    else:
        return {}, None
    where = MANIFEST
    if not isinstance(detectors, Mapping) or not all(isinstance(k, str) for k in detectors):
        raise ArtifactError(f"{where}: detectors: expected an object of named sections")
    if detectors and default not in detectors:
        raise ArtifactError(f"{where}: default_detector {default!r} is not among the "
                            f"detectors {sorted(detectors)}")
    return dict(detectors), default if detectors else None


def check_detector_name(root: Path, name: str | None, names: Iterable[str]) -> None:
    """ArtifactError naming the detectors there are when `name` (None: the default) is not
    one of them; reads nothing, so a server can check a setting before loading anything."""
    names = sorted(names)
    if name is not None and name not in names:
        raise ArtifactError(f"{root / MANIFEST}: no detector {name!r} (this artifact has: "
                            f"{', '.join(names) or 'none'}); add one with `aia artifact "
                            "add-detector`")


@dataclass(frozen=True)
class Dataset:
    """What the action model was trained on, as every answer reports it."""

    name: str  # e.g. "synthetic-interactions-v3", "ava-v2.2"
    label_set: str  # e.g. "synthetic-20", "ava-v2.2-80"
    real_footage: bool  # False: its actions mean nothing on real video

    @classmethod
    def from_training(cls, training: Mapping[str, Any], labels: Any, where: Path) -> Dataset:
        """The manifest's `training.dataset`; artifacts exported before it was recorded get
        it from their label table (exporters.dataset_info, the rule export applies)."""
        entry = training.get("dataset")
        if entry is None:
            from exporters.dataset_info import describe_dataset

            entry = describe_dataset(labels)
        try:
            return cls(str(entry["name"]), str(entry["label_set"]), bool(entry["real_footage"]))
        except (KeyError, TypeError) as err:
            raise ArtifactError(f"{where}: training.dataset needs name, label_set, "
                                f"real_footage: {err}") from None


@dataclass(frozen=True)
class Artifact:
    root: Path
    config: ModelConfig
    labels: tuple[Label, ...]
    input: InputSpec
    dtype: str
    graphs: Mapping[str, Mapping[str, Path]]  # graph -> format -> file
    training: Mapping[str, Any]
    parity: Mapping[str, Any]
    manifest: Mapping[str, Any]
    detectors: Mapping[str, DetectorSpec] = field(default_factory=dict)  # by name
    default_detector: str | None = None  # the one used unless a setting chooses another
    dataset: Dataset = Dataset("custom", "custom", True)

    @property
    def detector(self) -> DetectorSpec | None:
        """The default detector, or None when the artifact carries none."""
        return self.detectors.get(self.default_detector) if self.default_detector else None

    def choose_detector(self, name: str | None) -> DetectorSpec | None:
        """The detector called `name` (None: the default); ArtifactError naming the choices."""
        if name is None:
            return self.detector
        check_detector_name(self.root, name, self.detectors)
        return self.detectors[name]

    def path(self, graph: str, fmt: str) -> Path:
        found = self.graphs.get(graph, {}).get(fmt)
        if found is None:
            raise ArtifactError(f"{self.root / MANIFEST}: no {fmt} file for graph {graph!r}")
        return found


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_record(path: Path) -> dict[str, Any]:
    return {"sha256": sha256(path), "bytes": path.stat().st_size}


def read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{path}: not found; is {root} an `aia export` directory?")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{path}: not valid JSON (truncated or edited?): {err}") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: expected a JSON object, found {type(data).__name__}")
    if data.get("format") != FORMAT:
        raise ArtifactError(f"{path}: format {data.get('format')!r}; this loader reads "
                            f"{FORMAT!r} (export the checkpoint again with this version)")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise ArtifactError(f"{path}: missing {missing}")
    return data


def _member(root: Path, name: object, where: str) -> Path:
    """A file named by the manifest: a plain relative path that stays inside the artifact."""
    if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(
            name).parts:
        raise ArtifactError(f"{root / MANIFEST}: {where}: {name!r} is not a file inside {root}")
    return root / name


def verify_files(root: Path, files: Mapping[str, Any]) -> None:
    """Every listed file exists with the recorded size and sha256."""
    for name, record in files.items():
        path = _member(root, name, "files")
        if not path.is_file():
            raise ArtifactError(f"{path}: missing (listed in {MANIFEST})")
        size = path.stat().st_size
        if size != record.get("bytes"):
            raise ArtifactError(f"{path}: {size} bytes, {MANIFEST} records {record.get('bytes')}"
                                " (truncated or replaced)")
        if sha256(path) != record.get("sha256"):
            raise ArtifactError(f"{path}: sha256 differs from {MANIFEST} (modified or from "
                                "another export)")


def _labels(data: Any, where: Path, num_classes: int) -> tuple[Label, ...]:
    try:
        labels = tuple(Label(int(e["id"]), str(e["name"]), str(e["group"]), bool(e["evaluated"]))
                       for e in data)
    except (KeyError, TypeError, ValueError) as err:
        raise ArtifactError(f"{where}: labels: entries need id, name, group, evaluated: "
                            f"{err}") from None
    if [lb.id for lb in labels] != list(range(1, num_classes + 1)):
        raise ArtifactError(f"{where}: labels: ids must be 1..{num_classes} (the model's "
                            f"classes) in order, found {[lb.id for lb in labels]}")
    return labels


def _graphs(root: Path, data: Mapping[str, Any], files: Mapping[str, Any],
            wanted: Iterable[str]) -> dict[str, dict[str, Path]]:
    where = root / MANIFEST
    out: dict[str, dict[str, Path]] = {}
    for graph in GRAPHS:
        entry = data.get(graph)
        if not isinstance(entry, Mapping) or not isinstance(entry.get("files"), Mapping):
            raise ArtifactError(f"{where}: graphs.{graph}: missing or without files")
        out[graph] = {}
        for fmt, name in entry["files"].items():
            path = _member(root, name, f"graphs.{graph}.files.{fmt}")
            if name not in files:
                raise ArtifactError(f"{path}: not covered by the sha256 list of {MANIFEST}")
            out[graph][fmt] = path
        for fmt in wanted:
            if fmt not in out[graph]:
                raise ArtifactError(f"{where}: graph {graph!r} has no {fmt} file (has "
                                    f"{sorted(out[graph])})")
    return out


def load_artifact(root: str | Path, formats: Iterable[str] = ()) -> Artifact:
    """Check and open an artifact; `formats` names the formats the caller will load."""
    root = Path(root)
    data = read_manifest(root)
    where = root / MANIFEST
    if data["dtype"] not in DTYPES:
        raise ArtifactError(f"{where}: dtype {data['dtype']!r}, expected one of {DTYPES}")
    verify_files(root, data["files"])
    try:
        config = from_dict(data["model_config"])
        spec = InputSpec.from_dict(data["input"])
    except (ConfigError, TypeError) as err:
        raise ArtifactError(f"{where}: model_config / input: {err}") from None
    if spec != InputSpec.from_config(config):
        raise ArtifactError(f"{where}: input spec does not match model_config (edited?)")
    labels = _labels(data["labels"], where, config.classifier.num_classes)
    graphs = _graphs(root, data["graphs"], data["files"], formats)
    sections, default = manifest_detectors(data)
    detectors = {name: DetectorSpec.from_manifest(root, entry, data["files"], name)
                 for name, entry in sections.items()}
    return Artifact(root, config, labels, spec, data["dtype"], graphs, data["training"],
                    data["parity"], data, detectors, default,
                    Dataset.from_training(data["training"], data["labels"], where))


def onnx_session(path: Path, providers: Iterable[str] = ("CPUExecutionProvider",)) -> Any:
    """An ONNX Runtime session for one graph of a loaded artifact."""
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=list(providers))


def load_torchscript(path: Path, device: str = "cpu") -> Any:
    """A TorchScript graph; torch.jit's deprecation warnings on this torch are expected."""
    import warnings

    import torch
    import torchvision  # noqa: F401  registers torchvision::roi_align, which graph 1 calls

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(str(path), map_location=device)
    return module.eval()
