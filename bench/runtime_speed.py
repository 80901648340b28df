"""Runtime speed: per-call time of graph 1 (features) and graph 2 (head) for each runtime
(onnx, torchscript, eager), and clips per second at batch 1 vs batch 8.

Shapes are the service's usual ones (service.runtime.warm_up_inputs): clips at the resized
size of the synthetic 192x128 frames, 3 persons + every object slot through graph 1, 3
persons per clip and a full memory window in graph 2. Without --artifact the tiny preset is
exported with random weights first (speed does not depend on the weights).

Writes JSON (--out, default bench/results/runtime_speed.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from exporters.artifact import Artifact, load_artifact
from service.runtime import Runtime, load_runtime, warm_up, warm_up_inputs
from service.settings import Device, RuntimeKind


def random_tiny_artifact(folder: Path) -> Path:
    from exporters.export import export_artifact
    from exporters.random_weights import random_checkpoint
    from model.config import preset

    checkpoint = random_checkpoint(preset("tiny"), folder / "random.pt")
    return export_artifact(checkpoint, folder / "artifact").out


def batched(inputs: tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]],
            clips: int) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """The one-clip inputs repeated for `clips` clips (clip indices offset)."""
    (clip, boxes), head = inputs
    clip_b = np.repeat(clip, clips, axis=0)  # [clips,T,H,W,3]
    boxes_b = np.concatenate([boxes + np.array([c, 0, 0, 0, 0], np.float32)
                              for c in range(clips)])
    feats, batch, objects, object_mask, memory, memory_mask, seconds = head
    head_b = (np.tile(feats, (clips, 1)), np.repeat(np.arange(clips), len(batch)),
              *(np.repeat(x, clips, axis=0) for x in (objects, object_mask, memory,
                                                      memory_mask, seconds)))
    return (clip_b, boxes_b), head_b


def timed(call: Callable[[], Any], repeats: int) -> dict[str, float]:
    wall, cpu = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        call()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return {"median_ms": round(1000 * statistics.median(wall), 2),
            "min_ms": round(1000 * min(wall), 2),
            "cpu_median_ms": round(1000 * statistics.median(cpu), 2)}


def warm_up_runs(runtime: Runtime, features_in: tuple[np.ndarray, ...],
                 head_in: tuple[np.ndarray, ...], rounds: int = 2) -> None:
    for _ in range(rounds):
        runtime.features(*features_in)
        runtime.head(*head_in)


def measure(runtime: Runtime, artifact: Artifact, batch: int, repeats: int) -> dict[str, Any]:
    spec = artifact.input
    warm_up(runtime, spec)
    one = warm_up_inputs(spec)
    out: dict[str, Any] = {}
    for clips in (1, batch):
        features_in, head_in = batched(one, clips) if clips > 1 else one
        if clips > 1:  # a new shape's first calls are warm-up too
            warm_up_runs(runtime, features_in, head_in)
        f = timed(lambda fi=features_in: runtime.features(*fi), repeats)
        h = timed(lambda hi=head_in: runtime.head(*hi), repeats)
        out[f"batch{clips}"] = {
            "features": f, "head": h,
            "clips_per_s": round(clips / ((f["median_ms"] + h["median_ms"]) / 1000), 1)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifact", type=Path, help="artifact directory (default: random "
                        "tiny preset exported to a temp dir)")
    parser.add_argument("--runtimes", nargs="+", default=[k.value for k in RuntimeKind])
    parser.add_argument("--device", default="cpu", choices=[d.value for d in Device])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("bench/results/runtime_speed.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aia-runtime-speed-") as scratch:
        root = args.artifact or random_tiny_artifact(Path(scratch))
        artifact = load_artifact(root)
        spec = artifact.input
        (clip, boxes), head = warm_up_inputs(spec)
        results: dict[str, Any] = {}
        for kind in args.runtimes:
            runtime = load_runtime(artifact, RuntimeKind(kind), Device(args.device))
            results[kind] = {"device": runtime.device,
                             **measure(runtime, artifact, args.batch, args.repeats)}
            print(kind, json.dumps(results[kind]))
    report = {
        "artifact": str(args.artifact or "random-weight tiny preset"),
        "preset": artifact.config.name,
        "shapes": {"clip": list(clip.shape), "feature_boxes": len(boxes),
                   "head_persons": len(head[0]), "memory_slots": head[4].shape[1]},
        "batch": args.batch, "repeats": args.repeats, "cpus": os.cpu_count(),
        "machine": platform.machine(), "python": platform.python_version(),
        "runtimes": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
