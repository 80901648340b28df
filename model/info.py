"""`aia info`: what a preset costs, in parameters and multiply-accumulates."""

from __future__ import annotations

import argparse
import dataclasses
import json

from model.complexity import mac_counts, param_counts
from model.config import PRESETS, ConfigError, Structure, preset
from model.network import build_aia


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="r50_4x16", choices=sorted(PRESETS))
    parser.add_argument("--structure", choices=[s.value for s in Structure],
                        help="IA structure (default: the preset's)")
    parser.add_argument("--persons", type=int, nargs="+", default=[1, 5, 20],
                        help="person counts to cost the head at (default: 1 5 20)")
    parser.add_argument("--objects", type=int, default=None,
                        help="objects per clip (default: the preset's max_objects)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _millions(n: int) -> str:
    return f"{n / 1e6:9.3f} M"


def _giga(n: int) -> str:
    return f"{n / 1e9:9.3f} G"


def run(args: argparse.Namespace) -> int:
    cfg = preset(args.preset)
    if args.structure:
        cfg = cfg.replace(ia={"structure": args.structure})
    if any(p < 0 for p in args.persons):
        raise ConfigError(f"--persons={args.persons}: counts must be >= 0")
    params = param_counts(build_aia(cfg))
    macs = [mac_counts(cfg, p, args.objects) for p in args.persons]
    if args.json:
        print(json.dumps({
            "preset": cfg.name, "structure": cfg.ia.structure.value,
            "input": {"frames": cfg.input.frames, "height": cfg.input.short_side,
                      "width": cfg.input.max_long_side},
            "params": dataclasses.asdict(params),
            "macs": [dataclasses.asdict(m) for m in macs],
        }, indent=2))
        return 0
    print(f"preset {cfg.name}  structure {cfg.ia.structure.value}  blocks "
          f"{''.join(b.value for b in cfg.ia.blocks) or '-'}  feature dim {cfg.feature_dim}")
    print(f"input  {cfg.input.frames} frames of {cfg.input.short_side}x{cfg.input.max_long_side}"
          f" (slow {cfg.input.slow_frames}, fast {cfg.input.fast_frames})")
    print("parameters")
    for name in ("backbone", "ia", "classifier", "total"):
        print(f"  {name:<12}{_millions(getattr(params, name))}")
    print("multiply-accumulates per clip (head: memory/objects projected once per clip;"
          " reference: once per person)")
    print(f"  {'persons':>7} {'objects':>7} {'mem slots':>9} {'features':>11} {'head':>11}"
          f" {'head (ref)':>11}")
    for m in macs:
        print(f"  {m.persons:>7} {m.objects:>7} {m.memory_slots:>9} {_giga(m.features)}"
              f" {_giga(m.head)} {_giga(m.head_reference)}")
    return 0
