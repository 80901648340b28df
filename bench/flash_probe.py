"""Do a model's person features say that the person's lamp is flashing right now?

The synthetic temporal family ("lamp flashed red 3-4 s ago", ...) is read from memory: the
M block must find the person's own features 3-4 s away and see a flash in them. Nothing
labels a flash at the second it happens, so only the temporal loss, through the memory, can
teach the backbone to encode it; with AMU (and frozen) memory that loss never reaches the
neighbours' features, since they come from the bank (detached). This probe measures what the
pre-IA person features hold: a logistic regression from the features to the lamp state at
that second (off, red, green), fitted on training videos and scored on validation videos.

    python bench/flash_probe.py --data data/synth --out docs/results/flash-probe \
        --checkpoint NAME=runs/ablation/p-o-m-dense-serial/checkpoints/step-00002000.pt ...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from exporters.export import load_model
from model.config import preset
from model.data.dataset import AvaDataset, PersonSource, eval_options
from model.data.layout import load_layout
from model.data.records import Sample
from model.detector.truth import open_synth
from model.synth.body import lamp_flash

STATES = ("off", "red", "green")


def pixel_features(sample: Sample, keep: list[int]) -> np.ndarray:
    """The control: colour statistics of each box, grown 1.5x (the glow reaches past the hand),
    over the middle 4 frames: per-channel mean, 90th percentile and max, and the share of
    pixels near the red and the green glow colours (model/synth/body.py GLOW) -> [n,11]."""
    mid = len(sample.clip) // 2
    frames = sample.clip[mid - 2:mid + 2].astype(np.float32)  # [4,H,W,3]
    h, w = frames.shape[1:3]
    out = []
    for j in keep:
        x1, y1, x2, y2 = sample.person_boxes[j]
        dx, dy = (x2 - x1) / 4, (y2 - y1) / 4
        crop = frames[:, max(int(y1 - dy), 0):min(int(np.ceil(y2 + dy)), h),
                      max(int(x1 - dx), 0):min(int(np.ceil(x2 + dx)), w)].reshape(-1, 3)
        r, g, b = crop[:, 0], crop[:, 1], crop[:, 2]
        glow = [((r > 200) & (g < 90) & (b < 90)).mean(), ((g > 200) & (r < 90) & (b < 110)).mean()]
        out.append(np.concatenate([crop.mean(0), np.percentile(crop, 90, axis=0), crop.max(0),
                                   glow]))
    return np.asarray(out, np.float32).reshape(-1, 11)


def features_and_states(checkpoint: Path | None, data: Path, split: str, videos: int,
                        cache: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """Pre-IA features [n,D] of the station persons of `videos` videos and their lamp [n];
    checkpoint None: the pixel control (its input config is the tiny preset's)."""
    if checkpoint is None:
        cfg, model = preset("tiny"), None
    else:
        _, cfg, model = load_model(checkpoint)
    synth = open_synth(data)
    chosen = set(synth.videos(split)[:videos])
    dataset = AvaDataset(load_layout(data), split, cfg,
                         eval_options(persons=PersonSource.GROUND_TRUTH, cache_dir=cache))
    scenes = {v: synth.scene(v) for v in chosen}
    feats, states = [], []
    keys = [i for i, (video, _) in enumerate(dataset.keys) if video in chosen]
    with torch.no_grad():
        for done, i in enumerate(keys, start=1):
            sample = dataset[i]
            if not isinstance(sample, Sample) or len(sample.person_boxes) == 0:
                continue
            stations = {st.pid: st for st in scenes[sample.meta.video_id].stations}
            keep = [j for j, pid in enumerate(sample.person_ids) if int(pid) in stations]
            boxes = torch.cat([torch.zeros(len(keep), 1),
                               torch.from_numpy(sample.person_boxes[keep])], dim=1)  # [n,5]
            clip = torch.from_numpy(sample.clip).unsqueeze(0)  # [1,T,H,W,3]
            feats.append(pixel_features(sample, keep) if model is None
                         else model.features(clip, boxes).numpy())
            for j in keep:
                flash = lamp_flash(stations[int(sample.person_ids[j])], sample.meta.timestamp)
                states.append(0 if flash is None else 1 + int(flash))
            if done % 50 == 0 or done == len(keys):
                print(f"{checkpoint or 'pixels'} {split}: {done}/{len(keys)} key frames",
                      flush=True)
    return np.concatenate(feats), np.asarray(states)


def fit_probe(x: np.ndarray, y: np.ndarray, steps: int = 500,
              weight_decay: float = 1e-3) -> tuple[torch.nn.Linear, np.ndarray, np.ndarray]:
    """Class-balanced multinomial logistic regression on standardised features."""
    mean, std = x.mean(0), x.std(0) + 1e-6
    xt = torch.from_numpy((x - mean) / std).float()
    yt = torch.from_numpy(y).long()
    counts = np.bincount(y, minlength=len(STATES)).clip(min=1)
    weight = torch.from_numpy(len(y) / (len(STATES) * counts)).float()
    probe = torch.nn.Linear(x.shape[1], len(STATES))
    opt = torch.optim.LBFGS(probe.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(probe(xt), yt, weight=weight)
        loss = loss + weight_decay * probe.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return probe, mean, std


def recalls(probe: torch.nn.Linear, mean: np.ndarray, std: np.ndarray, x: np.ndarray,
            y: np.ndarray) -> dict[str, float]:
    with torch.no_grad():
        pred = probe(torch.from_numpy((x - mean) / std).float()).argmax(1).numpy()
    out = {s: float((pred[y == k] == k).mean()) if (y == k).any() else float("nan")
           for k, s in enumerate(STATES)}
    out["balanced accuracy"] = float(np.nanmean([out[s] for s in STATES]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", action="append", required=True, metavar="NAME=PATH",
                        help="NAME=pixels: the colour-statistics control instead of a model")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--train-videos", type=int, default=8)
    parser.add_argument("--val-videos", type=int, default=6)
    parser.add_argument("--cache", type=Path, default=None, help="window cache directory")
    parser.add_argument("--weight-decay", type=float, nargs="+", default=[1e-3, 1e-1],
                        help="L2 on the probe's weights; the best on validation is reported")
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    args = parser.parse_args()
    torch.manual_seed(0)
    results = {}
    for item in args.checkpoint:
        name, _, path = item.partition("=")
        source = None if path == "pixels" else Path(path)
        x_tr, y_tr = features_and_states(source, args.data, "train", args.train_videos,
                                         args.cache)
        x_va, y_va = features_and_states(source, args.data, "val", args.val_videos, args.cache)
        fits = []
        for decay in args.weight_decay:
            probe, mean, std = fit_probe(x_tr, y_tr, weight_decay=decay)
            fits.append({"weight decay": decay,
                         "train": recalls(probe, mean, std, x_tr, y_tr),
                         "val": recalls(probe, mean, std, x_va, y_va)})
        # an upper bound on what a linear read-out gets: the best decay chosen on validation
        best = max(fits, key=lambda f: f["val"]["balanced accuracy"])
        results[name] = {"checkpoint": path, **best, "fits": fits,
                         "val persons": {s: int((y_va == k).sum()) for k, s in enumerate(STATES)}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    cols = [*STATES, "balanced accuracy"]
    lines = ["Linear probe: pre-IA person features -> lamp state at that second (validation "
             "recall per state; chance 0.333 balanced; the weight decay with the best validation "
             f"score of {args.weight_decay}; {args.train_videos} training and {args.val_videos} "
             "validation videos)", "",
             "| model | " + " | ".join(cols) + " | train balanced | weight decay | val persons "
             "(off/red/green) |", "|---|" + "---|" * (len(cols) + 3)]
    for name, r in results.items():
        n = r["val persons"]
        lines.append(f"| {name} | " + " | ".join(f"{r['val'][c]:.3f}" for c in cols)
                     + f" | {r['train']['balanced accuracy']:.3f} | {r['weight decay']:g} | "
                     f"{n['off']}/{n['red']}/{n['green']} |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
