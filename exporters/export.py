"""Checkpoint -> artifact directory: export, verify, then publish atomically.

Everything is written into a hidden temp directory beside the target. The graphs are exported,
reloaded from disk and checked against the eager model (exporters.parity); only if every check
passes is `manifest.json` written (with the sha256 of every file) and the directory renamed to
the target. A failure removes the temp directory: the target is never half written.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnxruntime as ort
import torch
from tqdm import tqdm

from exporters import parity
from exporters.artifact import (
    FORMAT,
    MANIFEST,
    InputSpec,
    file_record,
    load_torchscript,
    onnx_session,
)
from exporters.dataset_info import describe_dataset
from exporters.detectors import DetectorSource, export_source, parse_source
from exporters.graphs import (
    SUFFIX,
    Dtype,
    ExportError,
    Format,
    GraphSpec,
    example_inputs,
    export_modules,
    export_onnx,
    export_torchscript,
    feature_spec,
    head_spec,
)
from model.config import ModelConfig, from_dict, to_dict
from model.detector.checkpoint import FILE_NAME as DETECTOR_CHECKPOINT
from model.network import AIA
from model.train import checkpoint as ckpt


@dataclass(frozen=True)
class ExportOptions:
    formats: tuple[Format, ...] = (Format.ONNX, Format.TORCHSCRIPT)
    dtype: Dtype = Dtype.FP32
    bound: float | None = None  # overrides the dtype's parity bound (tests force a failure)
    parity_short_side: int | None = None  # smaller parity clips for the big presets
    overwrite: bool = False
    command: Sequence[str] = field(default_factory=tuple)  # recorded in the manifest
    # the commands that made the checkpoint (data, training), recorded in the manifest
    records: Sequence[str] = field(default_factory=tuple)
    # detector sources (exporters.detectors.parse_source: `ssdlite-person`, DET.pt, COCO
    # .pth, each optionally NAME=...); empty: detector.pt beside the checkpoint when there is one
    detectors: Sequence[str] = field(default_factory=tuple)
    default_detector: str | None = None  # None: the first detector


@dataclass(frozen=True)
class ExportResult:
    out: Path
    manifest: dict[str, Any]
    seconds: dict[str, float]  # wall time of each graph export, per format


def load_model(path: Path) -> tuple[dict[str, Any], ModelConfig, AIA]:
    state = ckpt.load(path)
    cfg = from_dict(state["model_config"])
    model = AIA(cfg)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise ckpt.CheckpointError(f"{path}: weights do not fit its model_config: {err}") from None
    return state, cfg, model.eval()


def _check_labels(path: Path, labels: Any, cfg: ModelConfig) -> list[dict[str, Any]]:
    try:
        rows = [{"id": int(i), "name": str(n), "group": str(g), "evaluated": bool(e)}
                for i, n, g, e in labels]
    except (TypeError, ValueError) as err:
        raise ckpt.CheckpointError(f"{path}: labels must be [id, name, group, evaluated] rows: "
                                   f"{err}") from None
    if [r["id"] for r in rows] != list(range(1, cfg.classifier.num_classes + 1)):
        raise ckpt.CheckpointError(f"{path}: labels do not cover the model's "
                                   f"{cfg.classifier.num_classes} classes in order")
    return rows


def write_graphs(model: AIA, options: ExportOptions, folder: Path,
                 bar: tqdm) -> tuple[dict[str, dict[str, str]], dict[str, float]]:
    """Both graphs in every format -> ({graph: {format: file name}}, {step: seconds})."""
    cfg = model.cfg
    modules = export_modules(model, options.dtype)
    files: dict[str, dict[str, str]] = {}
    seconds: dict[str, float] = {}
    for spec in (feature_spec(cfg), head_spec(cfg)):
        example = example_inputs(spec, cfg)
        files[spec.name] = {}
        for fmt in options.formats:
            name = f"{spec.name}{SUFFIX[fmt]}"
            bar.set_postfix_str(f"{fmt} {spec.name}")
            start = time.perf_counter()
            writer = export_onnx if fmt is Format.ONNX else export_torchscript
            writer(modules[spec.name], spec, example, folder / name)
            seconds[f"{fmt}/{spec.name}"] = round(time.perf_counter() - start, 2)
            files[spec.name][fmt.value] = name
            bar.update(1)
    return files, seconds


def runners(folder: Path, files: dict[str, dict[str, str]],
            formats: Sequence[Format]) -> dict[str, parity.Runner]:
    """The exported files reloaded from disk, the way the service loads them."""
    out: dict[str, parity.Runner] = {}
    for fmt in formats:
        paths = [folder / files[g][fmt.value] for g in ("features", "head")]
        if fmt is Format.ONNX:
            out[fmt.value] = parity.OnnxRunner(*(onnx_session(p) for p in paths))
        else:
            out[fmt.value] = parity.TorchRunner(*(load_torchscript(p) for p in paths))
    return out


def verify(model: AIA, folder: Path, files: dict[str, dict[str, str]],
           options: ExportOptions) -> parity.ParityReport:
    reference = export_modules(model, Dtype.FP32)
    eager = parity.TorchRunner(reference["features"], reference["head"])
    with tempfile.TemporaryDirectory(prefix="aia-parity-") as scratch:
        cases = parity.parity_cases(model.cfg, Path(scratch), options.parity_short_side)
    return parity.check(eager, runners(folder, files, options.formats), cases,
                        model.cfg.ia.max_objects, options.dtype, options.bound)


def _shown(path: Path) -> str:
    """`path` relative to the working directory when under it: manifests travel."""
    resolved = path.resolve()
    try:
        return str(resolved.relative_to(Path.cwd()))
    except ValueError:
        return str(resolved)


def provenance(path: Path, state: dict[str, Any],
               records: Sequence[str] = ()) -> dict[str, Any]:
    train_cfg = state.get("train_config") or {}
    history = state.get("history") or {}
    best = history.get("best_map", -1.0)
    return {
        "checkpoint": _shown(path), "checkpoint_sha256": file_record(path)["sha256"],
        "step": int(state["step"]),
        "data_root": (train_cfg.get("data") or {}).get("root", ""),
        "validation_map": best if isinstance(best, float) and best >= 0 else None,
        "history": history, "train_config": train_cfg,
        "train_command": list(state.get("command") or []),
        "commands": list(records),
        "dataset": describe_dataset(state.get("labels") or [],
                                    (train_cfg.get("data") or {}).get("root")),
        # a published checkpoint brought in by `aia import`: its file, sha256, mapping version
        **({"imported": state["imported"]} if state.get("imported") else {}),
    }


def build_manifest(cfg: ModelConfig, labels: list[dict[str, Any]], options: ExportOptions,
                   graphs: dict[str, dict[str, str]], training: dict[str, Any],
                   report: parity.ParityReport, seconds: dict[str, float]) -> dict[str, Any]:
    specs: dict[str, GraphSpec] = {"features": feature_spec(cfg), "head": head_spec(cfg)}
    return {
        "format": FORMAT, "model_config": to_dict(cfg), "labels": labels,
        "input": InputSpec.from_config(cfg).to_dict(), "dtype": options.dtype.value,
        "graphs": {name: {**spec.to_dict(), "files": graphs[name]}
                   for name, spec in specs.items()},
        "training": training, "parity": report.to_dict(),
        "export": {"command": list(options.command), "seconds": seconds,
                   "torch": torch.__version__, "onnxruntime": ort.__version__,
                   "python": platform.python_version()},
        "files": {},
    }


def detector_sources(checkpoint: Path, options: ExportOptions) -> list[DetectorSource]:
    """The detectors to export: --detector, else detector.pt in the checkpoint's directory."""
    texts = list(options.detectors)
    beside = checkpoint.parent / DETECTOR_CHECKPOINT
    if not texts and beside.is_file():
        texts = [str(beside)]
    sources = [parse_source(t) for t in texts]
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ExportError(f"--detector: two detectors named alike {names}; name them NAME=...")
    return sources


def export_detectors(checkpoint: Path, options: ExportOptions, folder: Path,
                     manifest: dict[str, Any]) -> None:
    sources = detector_sources(checkpoint, options)
    if not sources:
        return
    manifest["detectors"] = {s.name: export_source(s, folder) for s in sources}
    default = options.default_detector or sources[0].name
    if default not in manifest["detectors"]:
        raise ExportError(f"--default-detector {default!r} is not among "
                          f"{sorted(manifest['detectors'])}")
    manifest["default_detector"] = default


def publish(folder: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished temp directory onto `out` (moving an old one aside first)."""
    old = None
    if out.exists():
        if not overwrite:
            raise ExportError(f"{out}: exists (pass --overwrite to replace it)")
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / out.name)
    folder.chmod(0o755)  # mkdtemp makes it private; an artifact is for others to read
    os.replace(folder, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_artifact(checkpoint: str | Path, out: str | Path,
                    options: ExportOptions | None = None) -> ExportResult:
    options = options or ExportOptions()
    checkpoint, out = Path(checkpoint), Path(out)
    if not options.formats:
        raise ExportError("no format to export: choose onnx and/or torchscript")
    if out.exists() and not options.overwrite:
        raise ExportError(f"{out}: exists (pass --overwrite to replace it)")
    state, cfg, model = load_model(checkpoint)
    labels = _check_labels(checkpoint, state["labels"], cfg)
    out.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        with tqdm(total=2 * len(options.formats), desc="export", unit="graph",
                  leave=False) as bar:
            graphs, seconds = write_graphs(model, options, folder, bar)
        report = verify(model, folder, graphs, options)
        if not report.passed:
            raise ExportError(f"{out}: parity check failed, nothing written:\n  "
                              + "\n  ".join(report.failures()))
        training = provenance(checkpoint, state, options.records)
        manifest = build_manifest(cfg, labels, options, graphs, training, report, seconds)
        export_detectors(checkpoint, options, folder, manifest)
        manifest["files"] = {p.name: file_record(p) for p in sorted(folder.iterdir())}
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        publish(folder, out, options.overwrite)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return ExportResult(out, manifest, seconds)
