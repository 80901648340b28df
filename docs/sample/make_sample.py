"""Writes the README's sample: docs/sample/clip.mp4 (5 s of the synthetic benchmark at
192x128) and docs/sample/boxes.json (its ground-truth person boxes at each whole second, the
`boxes` parameter of POST /v1/detect). Run: .venv/bin/python docs/sample/make_sample.py"""

from __future__ import annotations

import json
from pathlib import Path

from model.synth.annotate import key_people
from model.synth.dataset import SynthSpec, make_scene, render_video
from model.synth.scene import MIN_SECONDS
from model.synth.video import choose_codec, write_video

HERE = Path(__file__).resolve().parent


def main() -> None:
    spec = SynthSpec(out=HERE, videos=1, seconds=MIN_SECONDS, seed=7)
    scene = make_scene(spec, 0)
    write_video(HERE / "clip.mp4", render_video(scene), spec.fps, choose_codec("auto"),
                spec.width, spec.height)
    boxes = []
    for second in range(spec.seconds):
        persons = [[round(p.box[0] / spec.width, 4), round(p.box[1] / spec.height, 4),
                    round(p.box[2] / spec.width, 4), round(p.box[3] / spec.height, 4)]
                   for p in key_people(scene, second)]
        boxes.append({"timestamp": float(second), "boxes": persons})
    (HERE / "boxes.json").write_text(json.dumps(boxes) + "\n")


if __name__ == "__main__":
    main()
