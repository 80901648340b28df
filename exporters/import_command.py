"""`aia import`: a published checkpoint -> the artifact directory the service loads.

    aia import --from alphaction resnet50_4x16f_denseserial.pth --out artifacts/aia-r50-dense
    aia import --from pytorchvideo SLOWFAST_8x8_R50_DETECTION.pyth --out artifacts/ptv-r50

The file is read as published (exporters.import_alphaction, exporters.import_pytorchvideo),
every tensor placed into this project's network and every one of ours set (or the import is
refused, listing what is left), then exported like a trained checkpoint: ONNX and TorchScript
graphs, their parity checks and a manifest that records the source file's sha256, the mapping
version and the 80 AVA classes the model answers with. Detectors are added as with
`aia export --detector`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exporters.artifact import file_record
from exporters.export import ExportOptions, export_artifact
from exporters.graphs import ExportError, Format
from model.labels import ava_labels

if TYPE_CHECKING:
    from torch import Tensor

    from model.config import ModelConfig

SOURCES = ("alphaction", "pytorchvideo")


def _load(source: str, path: Path, preset_name: str | None
          ) -> tuple[ModelConfig, dict[str, Tensor], dict[str, object]]:
    """The importer of `source`; pytorchvideo's file fixes its own sampling (no --preset)."""
    if source == "alphaction":
        from exporters.import_alphaction import load_alphaction

        return load_alphaction(path, preset_name)
    if source == "pytorchvideo":
        from exporters.import_pytorchvideo import load_pytorchvideo

        if preset_name is not None:
            raise ExportError("--preset applies to --from alphaction only: pytorchvideo's "
                              "slowfast_r50_detection has one sampling (8 / 32 frames)")
        return load_pytorchvideo(path)
    raise ExportError(f"--from {source}: supported: {', '.join(SOURCES)}")


def write_checkpoint(source: str, path: Path, preset_name: str | None, out: Path) -> Path:
    """The published file as an `aia train` checkpoint (AVA's 80 labels) in `out`."""
    from model.config import to_dict
    from model.train.checkpoint import FORMAT, save_atomic

    cfg, state, facts = _load(source, path, preset_name)
    labels = [[lb.id, lb.name, lb.group, lb.evaluated] for lb in ava_labels()]
    if cfg.classifier.num_classes != len(labels):
        raise ExportError(f"{path}: {cfg.classifier.num_classes} classes, AVA has {len(labels)}")
    imported = {**facts, "sha256": file_record(path)["sha256"]}
    checkpoint = out / "imported.pt"
    save_atomic({"format": FORMAT, "step": 0, "model_config": to_dict(cfg),
                 "train_config": {"imported_from": source}, "model": state, "labels": labels,
                 "command": list(sys.argv), "imported": imported}, checkpoint)
    return checkpoint


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="the published file, as downloaded")
    parser.add_argument("--from", dest="source", choices=SOURCES, required=True,
                        help="whose layout the file has")
    parser.add_argument("--out", type=Path, required=True, help="artifact directory to create")
    parser.add_argument("--preset", choices=("r50_4x16", "r101_8x8"), default=None,
                        help="frame sampling when the file name does not say (4x16 / 8x8)")
    parser.add_argument("--formats", default="onnx,torchscript",
                        help="comma list of onnx, torchscript")
    parser.add_argument("--parity-short-side", type=int, default=128, metavar="PX",
                        help="short side of the parity clips (128: minutes, not hours, on CPU)")
    parser.add_argument("--detector", action="append", default=[], metavar="[NAME=]SOURCE",
                        help="detectors to carry, as `aia export --detector` (e.g. "
                             "ssdlite-person)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def run(args: argparse.Namespace) -> int:
    formats = tuple(Format(f.strip()) for f in args.formats.split(",") if f.strip())
    command = ["aia", "import", "--from", args.source, str(args.checkpoint), "--out",
               str(args.out)] + [w for d in args.detector for w in ("--detector", d)]
    try:
        if not args.checkpoint.is_file():
            raise ExportError(f"{args.checkpoint}: file not found")
        with tempfile.TemporaryDirectory(prefix="aia-import-") as scratch:
            checkpoint = write_checkpoint(args.source, args.checkpoint, args.preset,
                                          Path(scratch))
            options = ExportOptions(formats=formats, overwrite=args.overwrite,
                                    parity_short_side=args.parity_short_side,
                                    command=command, detectors=tuple(args.detector))
            result = export_artifact(checkpoint, args.out, options)
    except (ExportError, ValueError) as err:
        print(f"aia import: {err}", file=sys.stderr)
        return 1
    summary: dict[str, Any] = {"out": str(result.out),
                               "imported": result.manifest["training"].get("imported"),
                               "parity": {f: r["max_abs_logits"] for f, r in
                                          result.manifest["parity"]["formats"].items()}}
    print(json.dumps(summary))
    return 0
