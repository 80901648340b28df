"""`aia train-detector`: train the person + object detector on a synthetic dataset's frames
(exact boxes rebuilt from the generator), then score it on the val split's key frames.

Writes OUT/detector.pt (atomic, every --checkpoint-every steps and at the end),
OUT/detector-metrics.jsonl, OUT/detector-loss.png and OUT/detector-eval.json.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from model.detector.checkpoint import FILE_NAME, FORMAT, read_checkpoint
from model.detector.config import DetectorConfig, DetectorConfigError
from model.detector.data import Sample, augment, load_samples, training_target
from model.detector.evaluate import evaluate
from model.detector.network import build_detector, state_dict_of
from model.detector.truth import MIN_TRAIN_VISIBLE, TruthError, open_synth
from model.train.checkpoint import save_atomic


@dataclass(frozen=True)
class TrainSettings:
    steps: int = 600
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 50
    frames_per_second: int = 2  # training frames per video second (key frames and between)
    seed: int = 0
    threads: int = 1  # more threads thrash when the cores are shared
    checkpoint_every: int = 100


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def apply_overrides(cfg: DetectorConfig, settings: TrainSettings,
                    pairs: list[str]) -> tuple[DetectorConfig, TrainSettings]:
    """`--set key=value` (JSON values; lists for tuples) on DetectorConfig or TrainSettings."""
    model_keys = {f.name for f in fields(DetectorConfig)}
    train_keys = {f.name for f in fields(TrainSettings)}
    model_changes: dict[str, Any] = {}
    train_changes: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or key not in model_keys | train_keys:
            raise DetectorConfigError(f"--set {pair!r}: expected KEY=VALUE with KEY one of "
                                      f"{sorted(model_keys | train_keys)}")
        value = _parse_value(text)
        (model_changes if key in model_keys else train_changes)[key] = (
            tuple(value) if isinstance(value, list) else value)
    return replace(cfg, **model_changes), replace(settings, **train_changes)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="an `aia synth` dataset")
    parser.add_argument("--out", type=Path, required=True, help="directory for detector.pt")
    parser.add_argument("--steps", type=int, default=None, help="training steps (600)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a DetectorConfig or training setting, e.g. "
                             "--set batch_size=4 --set widths=[8,16,32,48]; repeatable")
    parser.add_argument("--resume", action="store_true", help="continue OUT/detector.pt")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _lr_at(step: int, settings: TrainSettings) -> float:
    if step < settings.warmup:
        return settings.lr * (step + 1) / settings.warmup
    done = (step - settings.warmup) / max(settings.steps - settings.warmup, 1)
    return settings.lr * 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))


def _batch(samples: list[Sample], targets: list[dict[str, torch.Tensor]],
           rng: np.random.Generator, size: int) -> tuple[list[torch.Tensor], list[dict]]:
    picks = rng.choice(len(samples), size=min(size, len(samples)), replace=False)
    pairs = [augment(samples[i].frame, targets[i], rng) for i in picks]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _state(model: torch.nn.Module, optimiser: torch.optim.Optimizer, cfg: DetectorConfig,
           settings: TrainSettings, step: int, extra: dict[str, Any]) -> dict[str, Any]:
    return {"format": FORMAT, "step": step, "config": cfg.to_dict(), "train": asdict(settings),
            "model": state_dict_of(model), "optimiser": optimiser.state_dict(), **extra}


def _step(model: torch.nn.Module, optimiser: torch.optim.Optimizer,
          images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    losses = model(images, targets)
    loss = sum(losses.values())
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
    optimiser.step()
    return {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in losses.items()}}


def _resume(model: torch.nn.Module, optimiser: torch.optim.Optimizer, ckpt_path: Path,
            log_path: Path, resume: bool) -> int:
    """-> first step; the log keeps only the steps the checkpoint has seen."""
    first = 0
    if resume and ckpt_path.is_file():
        state = read_checkpoint(ckpt_path)
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        first = int(state["step"])
    lines = log_path.read_text().splitlines() if log_path.exists() else []
    kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= first]
    log_path.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
    return first


def train(data: Path, out: Path, cfg: DetectorConfig, settings: TrainSettings,
          resume: bool = False, progress: bool = True,
          command: str = "") -> dict[str, Any]:
    """Train, checkpoint, plot and evaluate; returns the evaluation dict."""
    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    rng = np.random.default_rng(settings.seed)
    ds = open_synth(data)
    start_load = time.perf_counter()
    samples = load_samples(ds, "train", settings.frames_per_second, MIN_TRAIN_VISIBLE)
    targets = [training_target(s.truth, cfg) for s in samples]
    model = build_detector(cfg)
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.lr,
                                  weight_decay=settings.weight_decay)
    out.mkdir(parents=True, exist_ok=True)
    log_path, ckpt_path = out / "detector-metrics.jsonl", out / FILE_NAME
    first = _resume(model, optimiser, ckpt_path, log_path, resume)
    extra = {"command": command, "data": str(data)}
    started = time.perf_counter()
    model.train()
    bar = tqdm(range(first, settings.steps), desc="aia train-detector", file=sys.stderr,
               disable=not progress, initial=first, total=settings.steps)
    with log_path.open("a", encoding="utf-8") as log:
        for step in bar:
            for group in optimiser.param_groups:
                group["lr"] = _lr_at(step, settings)
            losses = _step(model, optimiser, *_batch(samples, targets, rng, settings.batch_size))
            log.write(json.dumps({"step": step + 1, "lr": _lr_at(step, settings), **losses})
                      + "\n")
            bar.set_postfix(loss=f"{losses['loss']:.3f}")
            if (step + 1) % settings.checkpoint_every == 0 and step + 1 < settings.steps:
                save_atomic(_state(model, optimiser, cfg, settings, step + 1, extra), ckpt_path)
    train_seconds = time.perf_counter() - started
    plot_losses(log_path, out / "detector-loss.png")
    result = {"data": str(data), "split": "val", "steps": settings.steps,
              "train_frames": len(samples), "load_seconds": round(started - start_load, 1),
              "train_seconds": round(train_seconds, 1),
              **evaluate(model, load_samples(ds, "val", 1), cfg)}
    save_atomic(_state(model, optimiser, cfg, settings, settings.steps,
                       {**extra, "evaluation": result["at_threshold"]}), ckpt_path)
    (out / "detector-eval.json").write_text(json.dumps(result, indent=2) + "\n",
                                            encoding="utf-8")
    return result


def plot_losses(log: Path, png: Path) -> None:
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [r["step"] for r in records]
    kernel = max(1, len(records) // 50)  # moving average: single steps are noisy

    def smooth(values: list[float]) -> np.ndarray:
        return np.convolve(values, np.ones(kernel) / kernel, mode="valid")

    shown = steps[kernel - 1:]  # each average is plotted at its window's last step
    ax.plot(shown, smooth([r["loss"] for r in records]), color="black", label="total")
    for key in sorted(k for k in records[0] if k.startswith("loss_")):
        ax.plot(shown, smooth([r[key] for r in records]), alpha=0.7, label=key[5:])
    ax.set(title="detector training loss", xlabel="step", yscale="log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    try:
        cfg, settings = apply_overrides(DetectorConfig(), TrainSettings(), args.set)
        if args.steps is not None:
            settings = replace(settings, steps=args.steps)
        command = shlex.join(["aia", "train-detector", *sys.argv[2:]])
        result = train(args.data, args.out, cfg, settings, args.resume, not args.quiet,
                       command)
    except (DetectorConfigError, TruthError, TypeError) as err:
        print(f"aia train-detector: error: {err}", file=sys.stderr)
        return 2
    shown = result["at_threshold"]
    print(f"val key frames: {shown['frames']}  threshold {shown['threshold']:.2f}  "
          f"person recall {shown['person_recall']:.3f} precision "
          f"{shown['person_precision']:.3f}  object recall {shown['object_recall']:.3f}")
    print(json.dumps({"out": str(args.out / FILE_NAME), "train_seconds":
                      result["train_seconds"]}))
    return 0
