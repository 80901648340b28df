"""CPU speed of graph 1 against the machine's roof and a peer, in one run (ratios, not
absolute times, are what compare across machines).

Measures, on the same random input, median of --repeats calls after one warm-up, eval mode:
- the CPU's sgemm rate (a large float32 matrix product): the roof for convolution work;
- our SlowFast R50 backbone in pytorchvideo's detector configuration
  (exporters.import_pytorchvideo), as it runs now and with every (1,k,k) convolution sent
  back through nn.Conv3d (what the backbone did before `FrameConv3d`);
- pytorchvideo's own `slowfast_r50_detection` backbone (blocks 0-4), built with
  pretrained=False, when pytorchvideo is importable (it is not a project dependency:
  see bench/pytorchvideo_reference.py for the PYTHONPATH recipe);
- graph 1 whole (normalisation, backbone, RoI) of r50_4x16, with its GFLOP/s against sgemm.

Writes JSON and a markdown table (--out, default bench/results/cpu_backbone).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from exporters.import_pytorchvideo import infer_config_from_names
from model.backbone import FrameConv3d, fold_frozen_norms
from model.config import preset
from model.network import FeatureGraph


def median_s(call: Callable[[], Any], repeats: int) -> float:
    call()  # warm-up: allocator, oneDNN primitive caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gflop(call: Callable[[], Any]) -> float:
    with FlopCounterMode(display=False) as counter:
        call()
    return counter.get_total_flops() / 1e9


def sgemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / median_s(lambda: a @ b, repeats) / 1e9


@contextmanager
def plain_conv3d() -> Iterator[None]:
    """Every FrameConv3d runs as nn.Conv3d (the layout before it), for a ratio in one run."""
    fast_path = FrameConv3d.forward
    FrameConv3d.forward = nn.Conv3d.forward  # type: ignore[method-assign]
    try:
        yield
    finally:
        FrameConv3d.forward = fast_path  # type: ignore[method-assign]


def pytorchvideo_backbone() -> Callable[[list[torch.Tensor]], Any] | None:
    try:
        from pytorchvideo.models.hub import slowfast_r50_detection
    except ImportError:
        return None
    blocks = slowfast_r50_detection(pretrained=False).eval().model.blocks[:5]

    def run(pathways: list[torch.Tensor]) -> list[torch.Tensor]:
        x = pathways
        for block in blocks:
            x = block(x)
        return x

    return run


@torch.no_grad()
def measure(height: int, width: int, repeats: int) -> dict[str, Any]:
    torch.manual_seed(0)
    cfg = infer_config_from_names()
    ours = FeatureGraph(cfg).eval()
    frames = cfg.input.frames
    clip = torch.randint(0, 256, (1, frames, height, width, 3), dtype=torch.uint8)
    slow, fast = ours.pathways(clip)  # [1,3,8,H,W], [1,3,32,H,W]
    out: dict[str, Any] = {"input": [frames, height, width], "slow": list(slow.shape),
                           "fast": list(fast.shape)}
    sgemm = sgemm_gflops()
    out["sgemm_gflops"] = sgemm
    out["backbone_gflop"] = gflop(lambda: ours.backbone(slow, fast))
    out["ours_backbone_s"] = median_s(lambda: ours.backbone(slow, fast), repeats)
    with plain_conv3d():
        out["ours_backbone_conv3d_s"] = median_s(lambda: ours.backbone(slow, fast), repeats)
    folded = fold_frozen_norms(copy.deepcopy(ours.backbone))  # what the eager runtime serves
    out["ours_backbone_folded_s"] = median_s(lambda: folded(slow, fast), repeats)
    peer = pytorchvideo_backbone()
    out["pytorchvideo_backbone_s"] = (median_s(lambda: peer([slow, fast]), repeats)
                                      if peer is not None else None)
    r50 = FeatureGraph(preset("r50_4x16")).eval()
    boxes = torch.tensor([[0, 10, 10, width / 2, height - 10.0]])
    out["features_gflop"] = gflop(lambda: r50(clip, boxes))
    out["features_s"] = median_s(lambda: r50(clip, boxes), repeats)
    out["features_gflops"] = out["features_gflop"] / out["features_s"]
    out["features_vs_sgemm"] = out["features_gflops"] / sgemm
    out["backbone_vs_conv3d"] = out["ours_backbone_s"] / out["ours_backbone_conv3d_s"]
    if peer is not None:
        peer_s = out["pytorchvideo_backbone_s"]
        out["backbone_vs_pytorchvideo"] = out["ours_backbone_s"] / peer_s
        out["folded_vs_pytorchvideo"] = out["ours_backbone_folded_s"] / peer_s
    return out


def markdown(row: dict[str, Any]) -> str:
    frames, h, w = row["input"]
    peer = row["pytorchvideo_backbone_s"]
    lines = [
        f"# Graph 1 on CPU ({row['cpus']} cores, torch {row['torch']}, {frames}x{h}x{w})", "",
        "| what | time (s) | GFLOP | GFLOP/s | ratio |", "|---|---|---|---|---|",
        f"| sgemm 2048^2 | | | {row['sgemm_gflops']:.1f} | 1.00 |",
        f"| our backbone (pytorchvideo config) | {row['ours_backbone_s']:.3f} | "
        f"{row['backbone_gflop']:.1f} | {row['backbone_gflop'] / row['ours_backbone_s']:.1f} | "
        + (f"{row['backbone_vs_pytorchvideo']:.2f}x pytorchvideo |" if peer else "|"),
        f"| same, (1,k,k) convs as nn.Conv3d | {row['ours_backbone_conv3d_s']:.3f} | | "
        f"{row['backbone_gflop'] / row['ours_backbone_conv3d_s']:.1f} | "
        f"ours = {row['backbone_vs_conv3d']:.2f}x this |",
        f"| same, norms folded (the eager runtime) | {row['ours_backbone_folded_s']:.3f} | | "
        f"{row['backbone_gflop'] / row['ours_backbone_folded_s']:.1f} | "
        + (f"{row['folded_vs_pytorchvideo']:.2f}x pytorchvideo |" if peer else "|"),
    ]
    if peer:
        lines.append(f"| pytorchvideo slowfast_r50_detection backbone | {peer:.3f} | | "
                     f"{row['backbone_gflop'] / peer:.1f} | |")
    lines.append(f"| graph 1 r50_4x16 (normalise, backbone, RoI) | {row['features_s']:.3f} | "
                 f"{row['features_gflop']:.1f} | {row['features_gflops']:.1f} | "
                 f"{row['features_vs_sgemm']:.2f} of sgemm |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/cpu_backbone"))
    args = parser.parse_args()
    row = measure(args.height, args.width, args.repeats)
    row.update(cpus=os.cpu_count(), threads=torch.get_num_threads(), torch=torch.__version__,
               machine=platform.machine(), load_average=round(os.getloadavg()[0], 2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(row, indent=2) + "\n")
    table = markdown(row)
    args.out.with_suffix(".md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
