"""`aia bench`: the benchmarks that are commands. `train-memory` (the paper's Figure 5) lives
with the model (model.bench_memory), `serve` with the service (service.bench); this
dispatcher sits above both, so the model layer never imports the service."""

from __future__ import annotations

import argparse

from model import bench_memory
from service import bench


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=["train-memory", "serve"], help="which benchmark")
    bench_memory.add_arguments(parser)
    bench.add_arguments(parser)  # light: no service app


def run(args: argparse.Namespace) -> int:
    return bench.run(args) if args.what == "serve" else bench_memory.run(args)
