"""`aia`: one command line for the whole project. Each subcommand lives in its own module
(`add_arguments(parser)`, `run(args) -> exit code`) and is imported only when chosen."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, one-line help). Later work adds synth, train, eval, export, serve, detect, bench.
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("model.info", "parameter and multiply-accumulate counts of a preset"),
    "synth": ("model.synth.command", "render a synthetic AVA-format dataset (videos + CSVs)"),
    "train": ("model.train.cli", "train the network on AVA-format data (AMU memory)"),
    "ablate": ("model.train.ablate", "train the paper's Table 1 variants and tabulate them"),
    "bench": ("service.bench_cli",
              "benchmarks: train-memory (the paper's Figure 5), serve (latency, throughput)"),
    "eval": ("model.eval_cli", "AVA frame mAP@0.5 of predictions (official evaluator's numbers)"),
    "export": ("exporters.command", "checkpoint -> ONNX / TorchScript artifact with manifest"),
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aia", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        sub_parser.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(sub_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(importlib.import_module(args._module).run(args))


if __name__ == "__main__":
    sys.exit(main())
