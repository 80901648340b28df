"""`aia bench train-memory`: the paper's Figure 5 on our code.

Step time and peak memory of a training step with `amu` memory (read from the feature bank)
against `joint` memory (every neighbour clip forwarded with gradients) as the memory window
grows. Each (mode, window) runs in its own process so its peak RSS is its own. Writes a
markdown table, JSON and a PNG.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

WINDOWS = (0, 2, 4, 8, 16, 30)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `aia bench train-memory` (bench/cli.py dispatches `aia bench`)."""
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--windows", type=int, nargs="+", default=list(WINDOWS))
    parser.add_argument("--steps", type=int, default=3, help="timed steps per point")
    parser.add_argument("--out", type=Path, default=None,
                        help="results path without suffix (train-memory: "
                        "docs/results/train-memory; serve: bench/results/serve)")
    parser.add_argument("--device", default=None,
                        help="train-memory: torch device (default cpu); serve: the server's "
                        "AIA_DEVICE (default: its settings' own, auto)")
    parser.add_argument("--_point", nargs=2, metavar=("MODE", "WINDOW"), help=argparse.SUPPRESS)
    parser.add_argument("--_data", type=Path, help=argparse.SUPPRESS)


def measure_point(data: Path, preset_name: str, mode: str, window: int, steps: int,
                  device: str) -> dict[str, float]:
    """One (mode, window): median step time, peak RSS and bytes saved for backward."""
    from model.bank import BankWrite
    from model.config import preset
    from model.data.batching import collate
    from model.data.dataset import AvaDataset, train_options
    from model.losses import action_loss
    from model.network import build_aia
    from model.train.config import MemoryConfig, MemoryMode
    from model.train.memory import build_memory

    torch.manual_seed(0)
    cfg = preset(preset_name).replace(
        ia={"memory_before": window, "memory_after": window},
        classifier={"num_classes": 4, "groups": [{"name": "action", "first_id": 1,
                                                 "last_id": 4, "loss": "sigmoid",
                                                 "weight": 4.0}]})
    dev = torch.device(device)
    model = build_aia(cfg).to(dev).train()
    dataset = AvaDataset(data, "train", cfg, train_options())
    memory = build_memory(MemoryMode(mode), cfg, MemoryConfig(mode=MemoryMode(mode)), dataset,
                          model, lambda writes: writes)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    saved = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.numel() * t.element_size()
        return t

    # the key frame in the middle of the video: the whole window lies inside it
    batch = collate([dataset[(0, len(dataset) // 2)]], dataset.num_classes).to(dev)
    bank = getattr(memory, "bank", None)
    if bank is not None:  # steady state: every neighbour second already written
        clip = batch.clips[0]
        bank.merge(BankWrite(clip.video_id, clip.timestamp + o,
                             torch.randn(cfg.ia.persons_per_second, cfg.feature_dim), 1.0)
                   for o in range(-window, window + 1) if o)
        bank.set_loss(1.0)
    times, saved_bytes = [], []
    for i in range(steps + 1):  # the first step warms up (and fills the bank for amu)
        saved[0] = 0
        start = time.perf_counter()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            window_mem = memory.read(batch, model)
            out = model(batch.clip, batch.person_boxes, batch.object_boxes, *window_mem)
            loss = action_loss(out.logits, batch.targets, cfg.classifier.groups).total
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        memory.after_step(batch, out.person_features, float(loss.detach()))
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - start)
            saved_bytes.append(saved[0])
    peak = (torch.cuda.max_memory_allocated(dev) if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"mode": mode, "window": window, "step_s": statistics.median(times),
            "peak_bytes": float(peak), "saved_bytes": float(statistics.median(saved_bytes))}


def make_data(root: Path, seconds: int) -> Path:
    from model.data.toy import ToyVideo, write_toy_dataset

    # one key frame in the middle of a video long enough for the largest window each side
    write_toy_dataset(root, [ToyVideo("long", seconds, width=64, height=48)])
    return root


def run(args: argparse.Namespace) -> int:
    args.device = args.device or "cpu"
    if args._point:
        mode, window = args._point[0], int(args._point[1])
        print(json.dumps(measure_point(args._data, args.preset, mode, window, args.steps,
                                       args.device)))
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp), 2 * max(args.windows) + 3)
        for mode in ("amu", "joint"):
            for window in args.windows:
                cmd = [sys.executable, "-m", "cli", "bench", "train-memory",
                       "--preset", args.preset, "--steps", str(args.steps), "--device",
                       args.device, "--_point", mode, str(window), "--_data", str(data)]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                rows.append(json.loads(out.strip().splitlines()[-1]))
                r = rows[-1]
                print(f"{mode:>5} window {window:>2}s: step {r['step_s']:.3f} s, peak "
                      f"{r['peak_bytes'] / 2**20:.0f} MiB, saved for backward "
                      f"{r['saved_bytes'] / 2**20:.1f} MiB", flush=True)
    write_results(rows, args.out or Path("docs/results/train-memory"), args.preset, args.device)
    return 0


def write_results(rows: list[dict[str, float]], out: Path, preset_name: str,
                  device: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=2))
    base = {r["mode"]: r for r in rows if r["window"] == 0}
    lines = [f"Training step vs memory window ({preset_name}, {device}, batch of 1 clip)", "",
             "| mode | window (s each side) | step (s) | x window 0 | peak memory (MiB) "
             "| saved for backward (MiB) | x window 0 |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        b = base[r["mode"]]
        lines.append(f"| {r['mode']} | {r['window']} | {r['step_s']:.3f} | "
                     f"{r['step_s'] / b['step_s']:.2f} | {r['peak_bytes'] / 2**20:.0f} | "
                     f"{r['saved_bytes'] / 2**20:.1f} | "
                     f"{r['saved_bytes'] / max(b['saved_bytes'], 1):.2f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for mode, style in (("amu", "o-"), ("joint", "s--")):
        pts = [r for r in rows if r["mode"] == mode]
        w = [r["window"] for r in pts]
        axes[0].plot(w, [r["step_s"] for r in pts], style, label=mode)
        axes[1].plot(w, [r["saved_bytes"] / 2**20 for r in pts], style, label=mode)
    axes[0].set(xlabel="memory window (s each side)", ylabel="step time (s)",
                title="step time")
    axes[1].set(xlabel="memory window (s each side)", ylabel="MiB",
                title="activations saved for backward")
    for ax in axes:
        ax.legend()
    fig.suptitle(f"AMU vs joint memory ({preset_name}, {device})")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)
    plt.close(fig)
