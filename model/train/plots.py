"""Training curves from the JSONL metrics log: loss per group, learning rate, validation mAP."""

from __future__ import annotations

import json
from pathlib import Path


def plot_curves(log: Path, png: Path) -> Path | None:
    if not log.is_file():
        return None
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    steps = [r for r in records if "loss" in r]
    vals = [r for r in records if "val_map" in r]
    if not steps and not vals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    x = [r["step"] for r in steps]
    axes[0].plot(x, [r["loss"] for r in steps], label="total", color="black")
    for key in sorted({k for r in steps for k in r if k.startswith("loss_")}):
        axes[0].plot(x, [r.get(key) for r in steps], label=key[5:], alpha=0.7)
    axes[0].set(title="training loss", xlabel="step", yscale="log")
    axes[0].legend(fontsize=8)
    axes[1].plot(x, [r["lr"] for r in steps])
    axes[1].set(title="learning rate", xlabel="step")
    vx = [r["step"] for r in vals]
    axes[2].plot(vx, [r["val_map"] for r in vals], "o-", label="overall", color="black")
    for key in sorted({k for r in vals for k in r if k.startswith("val_map_")}):
        axes[2].plot(vx, [r.get(key) for r in vals], "o--", label=key[8:], alpha=0.8)
    axes[2].set(title="validation frame mAP", xlabel="step", ylim=(0, 1))
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png
