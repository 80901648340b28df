"""`aia train --config configs/synth-tiny.yaml [--set key.path=value ...] [--resume auto|CKPT]`"""

from __future__ import annotations

import argparse

from model.train.config import load


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML training config (configs/*.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a config value, e.g. optim.lr=0.01")
    parser.add_argument("--resume", nargs="?", const="auto", default=None,
                        help="continue from the latest checkpoint in out_dir (or a given one)")


def run(args: argparse.Namespace) -> int:
    from model.train.loop import train

    cfg = load(args.config, args.overrides)
    out = train(cfg, resume=args.resume)
    print(f"done: {out}")
    return 0
