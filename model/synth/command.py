"""`aia synth`: render a synthetic AVA-format dataset whose labels need person, object and
memory interactions (docs/synthetic.md)."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

from model.synth.classes import CLASSES, Family
from model.synth.dataset import WRITTEN, SynthError, SynthSpec, clear_outputs, write_dataset
from model.synth.video import VideoWriteError


def _size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r}: expected WIDTHxHEIGHT, e.g. 192x128")
    return int(match.group(1)), int(match.group(2))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="dataset directory to write")
    parser.add_argument("--videos", type=int, default=10, help="number of videos (default 10)")
    parser.add_argument("--seconds", type=int, default=30, help="length of each video (30)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same data (0)")
    parser.add_argument("--size", type=_size, default=(192, 128), metavar="WxH",
                        help="frame size (default 192x128)")
    parser.add_argument("--fps", type=float, default=25.0, help="frames per second (25)")
    parser.add_argument("--split-val", type=float, default=0.2,
                        help="fraction of videos in the val split (default 0.2)")
    parser.add_argument("--codec", choices=["auto", "h264", "mpeg4"], default="auto",
                        help="auto: H.264 if libx264 is available, else MPEG-4")
    parser.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 4),
                        help="worker processes (default: CPU count, at most 4)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a dataset already in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")


def _summary(info: dict[str, object], seconds: float, frames: int) -> str:
    counts = info["label_counts"]
    assert isinstance(counts, dict)
    lines = [f"{frames} frames in {seconds:.1f} s ({frames / max(seconds, 1e-9):.0f} frames/s)"]
    for split, per_class in counts.items():
        lines.append(f"{split}: {sum(per_class.values())} labels")
        for family in Family:
            ids = [c for c in CLASSES if c.family is family]
            parts = ", ".join(f"{c.id} {c.name}: {per_class[str(c.id)]}" for c in ids)
            total = sum(per_class[str(c.id)] for c in ids)
            lines.append(f"  {family.value:<8} {total:>6}  ({parts})")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    width, height = args.size
    spec = SynthSpec(out=args.out, videos=args.videos, seconds=args.seconds, seed=args.seed,
                     width=width, height=height, fps=args.fps, split_val=args.split_val,
                     codec=args.codec)
    try:
        spec.check()
        if args.out.exists() and any(args.out.iterdir()):
            if not args.overwrite:
                raise SynthError(f"--out {args.out}: directory is not empty; pass --overwrite "
                                 f"to replace a dataset there (removes {', '.join(WRITTEN)})")
            clear_outputs(args.out)
        start = time.perf_counter()
        info = write_dataset(spec, workers=args.workers, progress=not args.quiet)
    except (SynthError, VideoWriteError) as err:
        print(f"aia synth: error: {err}", file=sys.stderr)
        return 2
    if not args.quiet:
        frames = spec.videos * round(spec.seconds * spec.fps)
        print(_summary(info, time.perf_counter() - start, frames))
    return 0
