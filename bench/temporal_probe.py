"""Can memory tell the synthetic temporal family, given a checkpoint's person features?

The temporal classes ("lamp flashed red 3-4 s ago", ...) are decided by the person's own
features 3-4 s away. Three probes on the pre-IA person features of the ground-truth persons
(boxes enlarged as at test time), none of which trains the model:

- oracle readout: the person's own features at -4, -3, +3, +4 s, found by person id, into a
  logistic regression (fitted on the even videos, scored on the odd ones): AP per temporal
  class against its prevalence. High: the features hold what the family needs.
- nearest neighbour: how often the feature at another second closest (cosine) to a person's
  own is that same person. What an attention that matches features as they are would find.
- identity probe: per video, a linear classifier from features to person id, fitted on the
  even seconds, scored on the odd ones. Whether identity is in the features at all.
- head probe (`--head-steps N`): a fresh IA head of the checkpoint's config trained N steps on
  these frozen features with fresh memory (every second's features, as validation reads
  them; no objects), on the temporal loss alone, then scored like the oracle. With
  `--identity-hint` the first 16 feature channels are replaced by a one-hot of the person id
  (query and memory alike), which makes identity trivial to match.

    python -m bench.temporal_probe --checkpoint runs/synth-tiny/checkpoints/best.pt \
        --data data/synth --out docs/results/temporal-probe

Writes `temporal-probe.json` and `temporal-probe.md` in `--out`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

LAGS = (-4, -3, 3, 4)  # seconds of the person's own features the family is decided by
NEIGHBOUR_OFFSETS = (-4, -3, -1, 1, 3, 4)


class Second(NamedTuple):
    feats: np.ndarray  # [n,D] pre-IA person features
    ids: np.ndarray  # [n] person ids
    targets: np.ndarray  # [n,A] multi-hot


Store = Mapping[tuple[str, int], Second]


def average_precision(y: np.ndarray, scores: np.ndarray) -> float:
    """The evaluator's VOC AP of binary labels y ranked by scores (0 without positives)."""
    from model.evaluate import average_precision as voc_ap

    positives = int(y.sum())
    return voc_ap(scores.copy(), y.astype(bool), positives) if positives else 0.0


def own_at(store: Store, video: str, second: int, pid: int, width: int) -> np.ndarray:
    """The person's own feature at a second, zeros where they are not annotated there."""
    entry = store.get((video, second))
    if entry is None or pid not in entry.ids:
        return np.zeros(width, np.float32)
    return entry.feats[int(np.flatnonzero(entry.ids == pid)[0])]


def oracle_rows(store: Store, columns: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[R, len(LAGS) * D] own features at the lags, [R, C] targets, [R] odd-video flags."""
    x, y, odd = [], [], []
    for (video, second), entry in sorted(store.items()):
        width = entry.feats.shape[1]
        for j, pid in enumerate(entry.ids.tolist()):
            x.append(np.concatenate([own_at(store, video, second + lag, pid, width)
                                     for lag in LAGS]))
            y.append(entry.targets[j, columns])
            odd.append(int(video.rsplit("_", 1)[-1]) % 2 == 1)
    return np.asarray(x, np.float32), np.asarray(y, np.float32), np.asarray(odd)


def logistic(x: np.ndarray, y: np.ndarray, fit: np.ndarray, steps: int = 500) -> np.ndarray:
    """Standardised features, one logistic regression per column (multi-label), fitted on the
    `fit` rows; returns probabilities for every row."""
    import torch

    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    mean, std = xt[fit].mean(0), xt[fit].std(0) + 1e-6
    xt = (xt - mean) / std
    layer = torch.nn.Linear(x.shape[1], y.shape[1])
    optimiser = torch.optim.Adam(layer.parameters(), 1e-2, weight_decay=1e-3)
    for _ in range(steps):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(layer(xt[fit]), yt[fit])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        return torch.sigmoid(layer(xt)).numpy()


def nearest_is_self(store: Store) -> dict[int, float]:
    """Per offset, the share of persons whose most similar feature (cosine) at that offset is
    their own."""
    hits: dict[int, list[bool]] = {o: [] for o in NEIGHBOUR_OFFSETS}
    for (video, second), entry in store.items():
        for j, pid in enumerate(entry.ids.tolist()):
            for offset in NEIGHBOUR_OFFSETS:
                other = store.get((video, second + offset))
                if other is None or pid not in other.ids:
                    continue
                norms = np.linalg.norm(other.feats, axis=1) * np.linalg.norm(entry.feats[j])
                cosine = other.feats @ entry.feats[j] / np.maximum(norms, 1e-9)
                hits[offset].append(bool(other.ids[int(cosine.argmax())] == pid))
    return {o: float(np.mean(h)) for o, h in hits.items() if h}


def identity_probe(store: Store) -> dict[str, float]:
    """Mean over videos of a linear person-id classifier's accuracy on odd seconds, fitted on
    even ones, and the majority rate."""
    accuracy, majority = [], []
    for video in sorted({v for v, _ in store}):
        seconds = sorted(s for v, s in store if v == video)
        feats = np.concatenate([store[(video, s)].feats for s in seconds])
        ids = np.concatenate([store[(video, s)].ids for s in seconds])
        odd = np.concatenate([np.full(len(store[(video, s)].ids), s % 2 == 1) for s in seconds])
        classes = sorted(set(ids.tolist()))
        y = np.array([classes.index(i) for i in ids.tolist()])
        onehot = np.eye(len(classes), dtype=np.float32)[y]
        probs = logistic(feats.astype(np.float32), onehot, ~odd, steps=300)
        accuracy.append(float((probs[odd].argmax(1) == y[odd]).mean()))
        majority.append(float(np.bincount(y[odd]).max() / odd.sum()))
    return {"accuracy": float(np.mean(accuracy)), "majority": float(np.mean(majority)),
            "videos": len(accuracy)}


def with_identity_hint(store: Store, channels: int = 16) -> dict[tuple[str, int], Second]:
    """The first `channels` feature channels replaced by a one-hot of the person id (x5)."""
    out = {}
    for key, entry in store.items():
        feats = entry.feats.copy()
        feats[:, :channels] = 0.0
        feats[np.arange(len(entry.ids)), entry.ids % channels] = 5.0
        out[key] = entry._replace(feats=feats)
    return out


def head_probe(store: Store, cfg: Any, columns: list[int], steps: int,
               seed: int = 0) -> list[float]:
    """A fresh head trained on the temporal loss over even videos with fresh memory; AP of
    each temporal column on the odd videos' persons."""
    import torch

    from model.head import AIAHead
    from model.losses import sigmoid_focal
    from model.memory_window import pad

    torch.manual_seed(seed)
    head = AIAHead(cfg)
    optimiser = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=1e-4)
    by_video: dict[str, dict[int, np.ndarray]] = {}
    for (video, second), entry in store.items():
        by_video.setdefault(video, {})[second] = entry.feats
    keys = sorted(store)
    fit = [k for k in keys if int(k[0].rsplit("_", 1)[-1]) % 2 == 0]
    held = sorted(set(keys) - set(fit))

    def forward(chosen: list[tuple[str, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        feats = torch.from_numpy(np.concatenate([store[k].feats for k in chosen]))
        clip_of = torch.cat([torch.full((len(store[k].ids),), i) for i, k in enumerate(chosen)])
        windows = [cfg.ia.window.gather(by_video[v], s, cfg.feature_dim) for v, s in chosen]
        memory = [torch.from_numpy(x) for x in pad(windows, cfg.feature_dim)]
        objects = torch.zeros(len(chosen), 1, cfg.feature_dim)
        logits = head(feats, clip_of, objects, torch.zeros(len(chosen), 1, dtype=torch.bool),
                      *memory)  # [N,A]
        targets = np.concatenate([store[k].targets for k in chosen])[:, columns]
        return logits[:, columns], torch.from_numpy(targets)

    rng = np.random.default_rng(seed)
    head.train()
    for _ in range(steps):
        logits, targets = forward([fit[i] for i in rng.choice(len(fit), 8, replace=False)])
        loss = sigmoid_focal(logits, targets, 2.0)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    head.eval()
    with torch.no_grad():
        logits, targets = forward(held)
    return [average_precision(targets[:, c].numpy(), logits[:, c].numpy())
            for c in range(len(columns))]


def person_features(checkpoint: Path, data: Path, split: str, videos: int | None, threads: int
                    ) -> tuple[Store, list[tuple[int, str]], Any, dict[str, Any]]:
    """Pre-IA features of the ground-truth persons of every key second, the temporal classes
    (id, name), the model config and facts about the run."""
    import torch

    from exporters.export import load_model
    from model.data.dataset import AvaDataset, LoaderOptions, PersonSource
    from model.data.offline import iter_video_batches
    from model.labels import read_label_table

    torch.set_num_threads(threads)
    state, cfg, model = load_model(checkpoint)
    labels = read_label_table(data / "labels.csv")
    temporal = [(lb.id, lb.name) for lb in labels if lb.group == "temporal"]
    options = LoaderOptions(persons=PersonSource.GROUND_TRUTH, test_boxes=True)
    dataset = AvaDataset(data, split, cfg, options)
    store: dict[tuple[str, int], Second] = {}
    chosen = sorted({v for v, _ in dataset.keys})[:videos]
    with torch.no_grad():
        for video in chosen:
            for batch in iter_video_batches(dataset, video, 8):
                feats = model.features(batch.clip, batch.person_boxes).numpy()
                clip_of = batch.person_batch.numpy()
                for i, meta in enumerate(batch.clips):
                    rows = clip_of == i
                    store[(video, meta.timestamp)] = Second(
                        feats[rows], batch.person_ids.numpy()[rows],
                        batch.targets.numpy()[rows])
    facts = {"checkpoint": str(checkpoint), "step": state.get("step"), "data": str(data),
             "split": split, "videos": len(chosen), "seconds": len(store),
             "persons_per_second": float(np.mean([len(e.ids) for e in store.values()]))}
    return store, temporal, cfg, facts


def run(checkpoint: Path, data: Path, split: str, videos: int | None, threads: int,
        head_steps: int = 0, identity_hint: bool = False) -> dict[str, Any]:
    store, temporal, cfg, facts = person_features(checkpoint, data, split, videos, threads)
    columns = [cid - 1 for cid, _ in temporal]
    x, y, odd = oracle_rows(store, columns)
    probs = logistic(x, y, ~odd)
    oracle = [{"id": cid, "name": name, "ap": average_precision(y[odd, c], probs[odd, c]),
               "prevalence": float(y[odd, c].mean())}
              for c, (cid, name) in enumerate(temporal)]
    report = {**facts, "oracle": oracle, "nearest_is_self": nearest_is_self(store),
              "identity_probe": identity_probe(store)}
    if head_steps:
        probed = with_identity_hint(store) if identity_hint else store
        report["head_probe"] = {"steps": head_steps, "identity_hint": identity_hint,
                                "ap": head_probe(probed, cfg, columns, head_steps)}
    return report


def render_markdown(report: dict[str, Any]) -> str:
    lines = [f"Checkpoint `{report['checkpoint']}` (step {report['step']}), ground-truth persons "
             f"of the {report['split']} split of `{report['data']}` ({report['videos']} videos, "
             f"{report['seconds']} key seconds, {report['persons_per_second']:.1f} persons a "
             "second).", "",
             "Oracle readout (own features at -4, -3, +3, +4 s by person id; logistic "
             "regression fitted on even videos, scored on odd ones):", "",
             "| class | AP | prevalence |", "|---|---|---|"]
    lines += [f"| {o['id']} {o['name']} | {o['ap']:.3f} | {o['prevalence']:.3f} |"
              for o in report["oracle"]]
    near = report["nearest_is_self"]
    lines += ["", "Nearest feature (cosine) at another second is the person's own:", "",
              "| offset (s) | " + " | ".join(f"{int(o):+d}" for o in near) + " |",
              "|---|" + "---|" * len(near),
              "| share | " + " | ".join(f"{v:.3f}" for v in near.values()) + " |", ""]
    ident = report["identity_probe"]
    lines.append(f"Linear person-id probe within a video (fitted on even seconds, scored on odd "
                 f"ones): accuracy {ident['accuracy']:.3f} (majority {ident['majority']:.3f}, "
                 f"{ident['videos']} videos).")
    if "head_probe" in report:
        probe = report["head_probe"]
        hint = ", identity hint" if probe["identity_hint"] else ""
        aps = ", ".join(f"{ap:.3f}" for ap in probe["ap"])
        lines += ["", f"Head probe ({probe['steps']} steps on the temporal loss{hint}): AP per "
                  f"temporal class {aps}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--split", default="train")
    parser.add_argument("--videos", type=int, default=None, help="at most this many")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--head-steps", type=int, default=0,
                        help="also train a fresh head this many steps on frozen features")
    parser.add_argument("--identity-hint", action="store_true",
                        help="head probe: a one-hot person id in the first 16 channels")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    report = run(args.checkpoint, args.data, args.split, args.videos, args.threads,
                 args.head_steps, args.identity_hint)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "temporal-probe.json").write_text(json.dumps(report, indent=2) + "\n")
    table = render_markdown(report)
    (args.out / "temporal-probe.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
