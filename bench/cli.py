"""`aia bench`: the benchmarks that are commands, `train-memory` (the paper's Figure 5,
bench/train_memory.py) and `serve` (latency and throughput of a real `aia serve`,
bench/serve.py). Each loads its own dependencies only when chosen."""

from __future__ import annotations

import argparse

from bench import serve, train_memory


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=["train-memory", "serve"], help="which benchmark")
    train_memory.add_arguments(parser)
    serve.add_arguments(parser)  # light: no service app


def run(args: argparse.Namespace) -> int:
    return serve.run(args) if args.what == "serve" else train_memory.run(args)
