"""Where a model's person RoI feature looks: input saliency of each family's decision.

For every ground-truth person of some validation key frames, the gradient of the true class's
logit (one per family: pose, object, person) with respect to the input pixels is summed over
time and colour, and its mass is split into regions: the person's own box, the other persons'
boxes, the object boxes, and the rest of the frame. With the baseline (no IA) a person-family
share outside the own box shows the backbone's receptive field carrying the partner's pose
into the person's own RoI feature, which is what lets the baseline read relations the
synthetic benchmark hides from the box's own pixels (docs/synthetic.md).

    python bench/roi_context.py --data data/synth --out docs/results/roi-context \
        --checkpoint runs/ablation/baseline-no-ia/checkpoints/step-00002000.pt
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import torch

from exporters.export import load_model
from model.data.dataset import AvaDataset, PersonSource, eval_options
from model.data.layout import load_layout
from model.data.records import Sample
from model.network import AIA

REGIONS = ("own box", "other persons", "objects", "around own box", "elsewhere")


def region_masks(sample: Sample, i: int, height: int, width: int) -> dict[str, np.ndarray]:
    """Disjoint [H,W] masks of the regions for person i, earlier regions of REGIONS first."""
    def paint(boxes: np.ndarray) -> np.ndarray:
        mask = np.zeros((height, width), bool)
        for x1, y1, x2, y2 in boxes:
            mask[int(max(y1, 0)):int(np.ceil(y2)), int(max(x1, 0)):int(np.ceil(x2))] = True
        return mask

    own = paint(sample.person_boxes[i:i + 1])
    others = paint(np.delete(sample.person_boxes, i, axis=0)) & ~own
    objects = paint(sample.object_boxes) & ~own & ~others
    x1, y1, x2, y2 = sample.person_boxes[i]
    w, h = x2 - x1, y2 - y1  # one box size on every side: the box grown to 3x its size
    around = paint(np.array([[x1 - w, y1 - h, x2 + w, y2 + h]])) & ~(own | others | objects)
    return {"own box": own, "other persons": others, "objects": objects,
            "around own box": around, "elsewhere": ~(own | others | objects | around)}


def saliency(model: AIA, sample: Sample, columns: list[int]) -> np.ndarray:
    """|d logit / d pixel| [n, len(columns), H, W] of every person's logits at `columns`."""
    # graph 1 takes a float clip as it takes uint8 (its normalisation casts), so pixels get grads
    clip = torch.from_numpy(sample.clip).unsqueeze(0).float()  # [1,T,H,W,3]
    clip.requires_grad_(True)
    boxes = torch.cat([torch.zeros(len(sample.person_boxes), 1),
                       torch.from_numpy(sample.person_boxes)], dim=1)  # [n,5]
    person = model.features(clip, boxes)  # [n,D]
    logits = model.head.classifier(person)  # [n,A] the head without IA: the person's own view
    out = np.zeros((len(boxes), len(columns), *sample.clip.shape[1:3]), np.float32)
    for i in range(len(boxes)):
        for j, col in enumerate(columns):
            (grad,) = torch.autograd.grad(logits[i, col], clip, retain_graph=True)
            out[i, j] = grad[0].abs().sum(dim=(0, 3)).numpy()  # [T,H,W,3] -> [H,W]
    return out


def figure(sample: Sample, i: int, sal: np.ndarray, families: list[str], png: Path) -> None:
    """The key frame, then each family's saliency map for person i (own box in white)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    frame = sample.clip[len(sample.clip) // 2]
    fig, axes = plt.subplots(1, 1 + len(families), figsize=(4 * (1 + len(families)), 3))
    axes[0].imshow(frame)
    axes[0].set_title("key frame")
    for ax, fam, heat in zip(axes[1:], families, sal, strict=True):
        ax.imshow(frame.mean(axis=2), cmap="gray", alpha=0.5)
        ax.imshow(heat / heat.max(), cmap="inferno", alpha=0.7)
        ax.set_title(f"{fam} decision: |d logit / d pixel|", fontsize=9)
    for ax in axes:
        x1, y1, x2, y2 = sample.person_boxes[i]
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="white", lw=1))
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--frames", type=int, default=40, help="key frames sampled")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    _, cfg, model = load_model(args.checkpoint)
    model.eval()
    layout = load_layout(args.data)
    dataset = AvaDataset(layout, args.split, cfg, eval_options(persons=PersonSource.GROUND_TRUTH))
    with (args.data / "labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))  # column c of the targets is rows[c]
    groups = [r["group"] for r in rows]
    alone = next(c for c, r in enumerate(rows) if r["name"] == "alone")
    families = ["pose", "object", "person"]
    rng = np.random.default_rng(args.seed)
    picks = rng.choice(len(dataset), size=min(args.frames, len(dataset)), replace=False)
    shares = {f: {r: [] for r in REGIONS} for f in families}
    areas = {r: [] for r in REGIONS}
    drawn = False
    for done, index in enumerate(sorted(picks.tolist()), start=1):
        sample = dataset[index]
        if not isinstance(sample, Sample) or len(sample.person_boxes) == 0:
            continue
        h, w = sample.clip.shape[1:3]
        for i in range(len(sample.person_boxes)):
            true = np.flatnonzero(sample.targets[i])
            columns = {g: next((c for c in true if groups[c] == g), None) for g in families}
            if columns["object"] is None:  # a walker: no object or person label
                continue
            sal = saliency(model, sample, [columns[f] for f in families])[i]  # [3,H,W]
            if not drawn and columns["person"] != alone:
                figure(sample, i, sal, families, args.out.with_suffix(".png"))
                drawn = True
            masks = region_masks(sample, i, h, w)
            for r, mask in masks.items():
                areas[r].append(mask.mean())
                for j, fam in enumerate(families):
                    shares[fam][r].append(float(sal[j][mask].sum() / max(sal[j].sum(), 1e-12)))
        print(f"\r{done}/{len(picks)} key frames", end="", flush=True)
    print()
    result = {"checkpoint": str(args.checkpoint), "persons": len(areas["own box"]),
              "area": {r: float(np.mean(v)) for r, v in areas.items()},
              "saliency": {f: {r: float(np.mean(v)) for r, v in s.items()}
                           for f, s in shares.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    lines = [f"Input saliency of the head-without-IA decision, {result['persons']} station "
             f"persons of {len(picks)} {args.split} key frames, `{args.checkpoint}`", "",
             "| decision | " + " | ".join(REGIONS) + " |", "|---|" + "---|" * len(REGIONS),
             "| (share of frame area) | " + " | ".join(
                 f"{result['area'][r]:.3f}" for r in REGIONS) + " |"]
    lines += [f"| {f} (true class logit) | " + " | ".join(
        f"{result['saliency'][f][r]:.3f}" for r in REGIONS) + " |" for f in families]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
