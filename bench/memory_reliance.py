"""What a trained model takes from its memory: validation scored with the memory it was trained
to read, with none, and with only the seconds 3 or more away.

An inference-time ablation of one checkpoint (no retraining): pass 1 extracts every second's
person and object features once; pass 2 scores every key frame under each memory condition.
A family decided by memory (the synthetic benchmark's temporal one) should fall to chance
without it and keep its score with the far seconds only (its evidence lies 3-4 s away); the
families decided inside the clip should not move. Each condition is scored with the official
evaluator (50 rows per key frame) and, as a diagnostic, with every row: a synthetic key frame
holds up to 10 persons x 20 classes, so the cut is shared by many rows.

    python -m bench.memory_reliance --checkpoint runs/synth-tiny/checkpoints/best.pt \
        --data data/synth --out docs/results/memory-reliance

Writes `memory-reliance.json`, `memory-reliance.md` and `memory-reliance.png` in `--out`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from model.evaluate import MAX_DETECTIONS_PER_KEYFRAME

Keep = Callable[[int, int], bool]  # (key second, memory second) -> may memory hold it

# condition -> which seconds of the window graph 2 may read (the key second's own persons are
# added inside the graph either way, as the model was trained)
CONDITIONS: dict[str, Keep] = {
    "full window": lambda key, second: True,
    "no memory": lambda key, second: second == key,
    "only seconds >= 3 s away": lambda key, second: second == key or abs(second - key) >= 3,
}
CUTS: dict[str, int | None] = {
    f"official ({MAX_DETECTIONS_PER_KEYFRAME} rows per key frame)": MAX_DETECTIONS_PER_KEYFRAME,
    "every row": None}


def kept_seconds(seconds: Mapping[int, Any], key: int, keep: Keep) -> dict[int, Any]:
    """The seconds of `seconds` that a condition lets the key frame `key` read."""
    return {s: v for s, v in seconds.items() if keep(key, s)}


def score(checkpoint: Path, data: Path, split: str, threads: int) -> dict[str, Any]:
    import torch
    from tqdm import tqdm

    from exporters.export import load_model
    from model.data.dataset import AvaDataset, eval_options
    from model.labels import read_label_table
    from model.train.validate import extract_video, predict_video, score_rows

    torch.set_num_threads(threads)
    state, cfg, model = load_model(checkpoint)
    labels = read_label_table(data / "labels.csv")
    threshold = state.get("train_config", {}).get("data", {}).get("person_threshold", 0.5)
    dataset = AvaDataset(data, split, cfg, eval_options(person_threshold=threshold))
    device = torch.device("cpu")
    predictions: dict[str, list] = {name: [] for name in CONDITIONS}
    videos = sorted({video for video, _ in dataset.keys})
    for video in tqdm(videos, desc="memory-reliance", unit="video", file=sys.stderr):
        seconds = extract_video(model, dataset, video, 8, device)
        for key in sorted(t for v, t in dataset.keys if v == video):
            for name, keep in CONDITIONS.items():
                predictions[name] += predict_video(model, cfg, video, [key],
                                                   kept_seconds(seconds, key, keep), device)
    rows = []
    for cut_name, cut in CUTS.items():
        for name, rows_of in predictions.items():
            result, families = score_rows(dataset, labels, videos, rows_of, cut)
            rows.append({"memory": name, "cut": cut_name, "map": result.mean_ap,
                         "families": families})
    return {"checkpoint": str(checkpoint), "step": state.get("step"), "data": str(data),
            "split": split, "videos": len(videos),
            "window": [cfg.ia.memory_before, cfg.ia.memory_after], "rows": rows}


def render_markdown(report: dict[str, Any]) -> str:
    families = list(report["rows"][0]["families"]) if report["rows"] else []
    head = ["memory", "rows scored", "mAP", *families]
    lines = [f"Checkpoint `{report['checkpoint']}` (step {report['step']}), {report['split']} "
             f"split of `{report['data']}` ({report['videos']} videos), memory window "
             f"-{report['window'][0]}..+{report['window'][1]} s.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in report["rows"]:
        cells = [r["memory"], r["cut"], f"{r['map']:.3f}",
                 *(f"{r['families'][f]:.3f}" for f in families)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["rows"] if r["cut"] == next(iter(CUTS))]
    families = ["mAP", *rows[0]["families"]]
    width = 0.8 / len(rows)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for i, r in enumerate(rows):
        values = [r["map"], *r["families"].values()]
        ax.bar([x - 0.4 + width * (i + 0.5) for x in range(len(families))], values, width,
               label=r["memory"])
    ax.set_xticks(range(len(families)), families)
    ax.set(ylabel="validation frame mAP (official)", ylim=(0, 1),
           title=f"What the model reads from memory (step {report['step']})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--split", default="val")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    report = score(args.checkpoint, args.data, args.split, args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "memory-reliance.json").write_text(json.dumps(report, indent=2) + "\n")
    table = render_markdown(report)
    (args.out / "memory-reliance.md").write_text(table)
    plot(report, args.out / "memory-reliance.png")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
