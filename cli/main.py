"""`aia`: one command line for the whole project. Each subcommand lives in its own module
(`add_arguments(parser)`, `run(args) -> exit code`) in the package it belongs to, and only the
chosen one is imported: `aia --help` loads none of them, `aia serve` loads no training code."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("model.info", "parameter and multiply-accumulate counts of a preset"),
    "synth": ("model.synth.command", "render a synthetic AVA-format dataset (videos + CSVs)"),
    "train": ("model.train.cli", "train the network on AVA-format data (AMU memory)"),
    "ablate": ("model.train.ablate", "train the paper's Table 1 variants and tabulate them"),
    "bench": ("bench.cli",
              "benchmarks: train-memory (the paper's Figure 5), serve (latency, throughput)"),
    "eval": ("model.eval_cli", "AVA frame mAP@0.5 of predictions (official evaluator's numbers)"),
    "export": ("exporters.command", "checkpoint -> ONNX / TorchScript artifact with manifest"),
    "models": ("exporters.models_command",
               "a models directory: publish a version, list them, point at one (rollback)"),
    "artifact": ("exporters.artifact_edit",
                 "edit an artifact: add a detector (e.g. the real person detector), "
                 "record its dataset"),
    "import": ("exporters.import_command",
               "a published checkpoint (AlphAction's AIA models) -> artifact, proven mapping"),
    "train-detector": ("model.detector.train",
                       "train the person + object detector on synthetic key frames"),
    "serve": ("service.cli", "the detection service (FastAPI + uvicorn; AIA_* settings)"),
    "detect": ("service.detect_cli",
               "the service's engine on a local video: JSON, AVA CSV, annotated mp4"),
}


def chosen_command(argv: Sequence[str]) -> str | None:
    """The subcommand named in argv: the first word that is not an option (none of the
    top-level options takes a value)."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """Every subcommand is listed; only `chosen` imports its module to add its flags."""
    parser = argparse.ArgumentParser(prog="aia", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        sub_parser.set_defaults(_module=module)
        if name == chosen:
            importlib.import_module(module).add_arguments(sub_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(chosen_command(argv)).parse_args(argv)
    return int(importlib.import_module(args._module).run(args))


if __name__ == "__main__":
    sys.exit(main())
