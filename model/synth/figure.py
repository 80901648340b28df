"""The picture in docs/synthetic.md: one rendered key frame with its labelled boxes.

    python -m model.synth.figure --out docs/synthetic-frame.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # no pyplot: no backend or display state is touched
from matplotlib.patches import Rectangle

from model.synth.annotate import key_objects, key_people
from model.synth.classes import CLASSES, OBJECT_CATEGORIES, Family
from model.synth.raster import Painter, background, render_frame
from model.synth.scene import sample_scene

FAMILY_COLOURS = {Family.POSE: "#ffffff", Family.OBJECT: "#ffb000", Family.PERSON: "#40c0ff",
                  Family.LAMP: "#ff4040", Family.TEMPORAL: "#ff60ff"}


def _short(label: int) -> str:
    return CLASSES[label - 1].name.split(" (")[0]


def key_frame_figure(out: Path, seed: int = 4, second: int = 8, width: int = 192,
                     height: int = 128) -> Path:
    """Render key second `second` of video 0 of seed `seed` with person boxes (labels listed,
    one colour per family) and object boxes (dashed); write a PNG."""
    scene = sample_scene("synth_0000", np.random.SeedSequence([seed, 0]).spawn(2)[0], width,
                         height, 25.0, max(second + 3, 20))
    image = render_frame(scene, scene.key_frame(second), background(scene), Painter())
    fig = Figure(figsize=(width / 16, height / 16), dpi=100)
    ax = fig.add_subplot()
    ax.imshow(image, interpolation="nearest")
    for person in key_people(scene, second):
        x1, y1, x2, y2 = person.box
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=1.2, ec="#00ff66"))
        for row, label in enumerate(sorted(person.labels)):
            family = CLASSES[label - 1].family
            ax.text(x1, y1 - 1 - 3.2 * (len(person.labels) - 1 - row), _short(label),
                    fontsize=6, color=FAMILY_COLOURS[family], va="bottom",
                    bbox={"fc": "black", "alpha": 0.55, "pad": 0.6, "lw": 0})
    for (x1, y1, x2, y2), category in key_objects(scene, second):
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=1.0, ec="#ffb000",
                               ls="--"))
        ax.text(x1, y2 + 3, OBJECT_CATEGORIES[category], fontsize=5, color="#ffb000")
    ax.set_axis_off()
    ax.set_title(f"aia synth: key frame {second} s; labels: pose white, object orange, "
                 "person blue, lamp red, temporal pink", fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/synthetic-frame.png"))
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--second", type=int, default=8)
    args = parser.parse_args()
    print(key_frame_figure(args.out, args.seed, args.second))


if __name__ == "__main__":
    main()
