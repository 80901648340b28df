"""`aia artifact`: change an exported artifact without re-exporting its action model.

- `aia artifact add-detector DIR SOURCE`: export a detector (`ssdlite-person`, an `aia
  train-detector` checkpoint, a torchvision COCO weights file) into the artifact, e.g. to put
  the real person detector in front of the shipped synthetic action model.
- `aia artifact set-dataset DIR --name N --label-set L (--real-footage | --synthetic)`: record
  what the action model was trained on, for artifacts exported before the manifest said it.
- `aia artifact regraph DIR`: export both graphs again from the artifact's own weights (its
  TorchScript files) with this code, parity-checked as `aia export` does; the weights and the
  answers stay, the graphs take what the code learnt since (e.g. faster layouts).

Every edit works on a copy beside the artifact, appends itself to the manifest's `edits`,
recomputes the sha256 list, checks the result with `load_artifact` and only then replaces the
directory: a failed edit leaves the artifact as it was. The version the service reports
(name + manifest hash) changes with every edit, so session memory of the old one is not read.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from exporters.artifact import (
    MANIFEST,
    ArtifactError,
    file_record,
    load_artifact,
    manifest_detectors,
    read_manifest,
)
from exporters.detector import TRAINED_ON as SYNTHETIC_TRAINED_ON
from exporters.detectors import export_source, parse_source
from exporters.export import publish
from exporters.graphs import ExportError

Change = Callable[[dict[str, Any], Path], None]


def edit_artifact(root: str | Path, change: Change, command: list[str]) -> dict[str, Any]:
    """Apply `change(manifest, folder)` to a copy of the artifact, then swap it in."""
    root = Path(root)
    load_artifact(root)  # refuse to edit a broken artifact
    folder = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
    try:
        for path in root.iterdir():
            if path.is_file():
                shutil.copy2(path, folder / path.name)
        manifest = read_manifest(folder)
        detectors, default = manifest_detectors(manifest)
        if manifest.pop("detector", None) is not None:  # the unnamed section of older exports:
            detectors["synthetic"].setdefault("trained_on", SYNTHETIC_TRAINED_ON)  # synthetic
        if detectors:
            manifest["detectors"], manifest["default_detector"] = detectors, default
        change(manifest, folder)
        manifest.setdefault("edits", []).append(
            {"command": command, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        manifest["files"] = {p.name: file_record(p) for p in sorted(folder.iterdir())
                             if p.is_file() and p.name != MANIFEST}
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        load_artifact(folder)
        publish(folder, root, overwrite=True)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return manifest


def add_detector(root: str | Path, source_text: str, score_threshold: float | None = None,
                 make_default: bool = False, replace: bool = False,
                 command: list[str] | None = None) -> dict[str, Any]:
    source = parse_source(source_text)

    def change(manifest: dict[str, Any], folder: Path) -> None:
        detectors = manifest.setdefault("detectors", {})
        if source.name in detectors and not replace:
            raise ExportError(f"{root}: already has a detector {source.name!r} (pass --replace, "
                              "or name this one NAME=SOURCE)")
        old = detectors.get(source.name, {}).get("file")
        if old and old != source.file_name:
            (folder / old).unlink(missing_ok=True)
        detectors[source.name] = export_source(source, folder, score_threshold)
        if make_default or not manifest.get("default_detector"):
            manifest["default_detector"] = source.name

    return edit_artifact(root, change, command or ["aia", "artifact", "add-detector",
                                                   str(root), source_text])


def set_dataset(root: str | Path, name: str, label_set: str, real_footage: bool,
                command: list[str] | None = None) -> dict[str, Any]:
    def change(manifest: dict[str, Any], _: Path) -> None:
        manifest["training"]["dataset"] = {"name": name, "label_set": label_set,
                                           "real_footage": real_footage}

    return edit_artifact(root, change, command or ["aia", "artifact", "set-dataset", str(root)])


def regraph(root: str | Path, command: list[str] | None = None) -> dict[str, Any]:
    from tqdm import tqdm

    from exporters.export import ExportOptions, verify, write_graphs
    from exporters.graphs import Dtype, Format
    from exporters.weights_of import export_wrappers
    from model.network import AIA

    artifact = load_artifact(root, ("torchscript",))
    features, head = export_wrappers(artifact)
    model = AIA(artifact.config)
    model.features, model.head = features.net.float(), head.net.float()
    model.eval()

    def change(manifest: dict[str, Any], folder: Path) -> None:
        formats = tuple(Format(f) for f in ("onnx", "torchscript")
                        if f in manifest["graphs"]["features"]["files"])
        options = ExportOptions(formats=formats, dtype=Dtype(manifest["dtype"]))
        with tqdm(total=2 * len(formats), desc="regraph", unit="graph", leave=False) as bar:
            graphs, seconds = write_graphs(model, options, folder, bar)
        report = verify(model, folder, graphs, options)
        if not report.passed:
            raise ExportError(f"{root}: parity check failed, nothing changed:\n  "
                              + "\n  ".join(report.failures()))
        manifest["parity"] = report.to_dict()
        manifest["export"]["seconds"] = seconds

    return edit_artifact(root, change, command or ["aia", "artifact", "regraph", str(root)])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = sub.add_parser("add-detector", help="export a detector into an artifact")
    add.add_argument("artifact", type=Path, help="an `aia export` directory")
    add.add_argument("source", metavar="[NAME=]SOURCE",
                     help="'ssdlite-person', an `aia train-detector` .pt, or a torchvision "
                          "COCO weights .pth")
    add.add_argument("--score-threshold", type=float, default=None,
                     help="applied inside the graph (default: the detector's own, 0.5)")
    add.add_argument("--default", action="store_true",
                     help="make it the detector used unless AIA_DETECTOR chooses")
    add.add_argument("--replace", action="store_true", help="replace a detector of that name")
    data = sub.add_parser("set-dataset", help="record what the action model was trained on")
    data.add_argument("artifact", type=Path)
    data.add_argument("--name", required=True, help="e.g. synthetic-interactions-v3, ava-v2.2")
    data.add_argument("--label-set", required=True, help="e.g. synthetic-20, ava-v2.2-80")
    kind = data.add_mutually_exclusive_group(required=True)
    kind.add_argument("--real-footage", action="store_true",
                      help="its actions mean something on real video")
    kind.add_argument("--synthetic", action="store_true",
                      help="trained on synthetic video only: answers say so")
    again = sub.add_parser("regraph", help="export the graphs again from the artifact's own "
                                           "weights with this code (parity-checked)")
    again.add_argument("artifact", type=Path)


def _command(args: argparse.Namespace) -> list[str]:
    """The invocation, recorded in the manifest's `edits`."""
    words = ["aia", "artifact", args.action, str(args.artifact)]
    if args.action == "add-detector":
        words.append(args.source)
        if args.score_threshold is not None:
            words += ["--score-threshold", repr(args.score_threshold)]
        words += ["--default"] * args.default + ["--replace"] * args.replace
        return words
    if args.action == "regraph":
        return words
    return [*words, "--name", args.name, "--label-set", args.label_set,
            "--real-footage" if args.real_footage else "--synthetic"]


def run(args: argparse.Namespace) -> int:
    command = _command(args)
    try:
        if args.action == "add-detector":
            manifest = add_detector(args.artifact, args.source, args.score_threshold,
                                    args.default, args.replace, command)
        elif args.action == "regraph":
            manifest = regraph(args.artifact, command)
        else:
            manifest = set_dataset(args.artifact, args.name, args.label_set,
                                   args.real_footage, command)
    except (ArtifactError, ExportError) as err:
        print(f"aia artifact: {err}", file=sys.stderr)
        return 1
    print(json.dumps({"artifact": str(args.artifact),
                      "detectors": sorted(manifest.get("detectors", {})),
                      "default_detector": manifest.get("default_detector"),
                      "dataset": manifest["training"].get("dataset")}))
    return 0
