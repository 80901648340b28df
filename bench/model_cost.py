"""Network cost benchmark: tiny forward+backward time on CPU, and the head's cost with memory
projected once per clip (ours) against once per person (the reference), measured in one run.

Prints a table, writes JSON (--out) and a PNG chart beside it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from model.config import preset
from model.interaction import per_person
from model.network import build_aia


def timed(fn: object, repeats: int) -> float:
    fn()  # type: ignore[operator]
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def tiny_train_step(repeats: int) -> float:
    cfg = preset("tiny")
    model = build_aia(cfg)
    clip = torch.randint(0, 256, (2, cfg.input.frames, 128, 170, 3), dtype=torch.uint8)
    persons = torch.tensor([[0, 10, 10, 60, 100], [0, 50, 20, 120, 120], [1, 30, 30, 90, 110.0]])
    objects = torch.tensor([[0, 5, 5, 40, 40], [1, 60, 60, 100, 100.0]])
    slots = 8 * cfg.ia.persons_per_second
    memory = torch.randn(2, slots, cfg.feature_dim)
    mask = torch.ones(2, slots, dtype=torch.bool)
    seconds = torch.tensor([-4, -3, -2, -1, 1, 2, 3, 4]).repeat_interleave(3).repeat(2, 1)

    def step() -> None:
        model.zero_grad()
        model(clip, persons, objects, memory, mask, seconds).logits.sum().backward()

    return timed(step, repeats)


def head_times(persons: int, repeats: int) -> tuple[float, float]:
    cfg = preset("r50_4x16")
    model = build_aia(cfg).eval()
    d, window = cfg.feature_dim, cfg.ia.window
    slots = window.slots
    feats = torch.randn(persons, d)
    batch = torch.zeros(persons, dtype=torch.long)
    args = (feats, batch, torch.randn(1, 5, d), torch.ones(1, 5, dtype=torch.bool),
            torch.randn(1, slots, d), torch.ones(1, slots, dtype=torch.bool),
            torch.from_numpy(window.slot_seconds())[None])
    head = model.head
    assert head.ia is not None

    def ours() -> None:
        with torch.no_grad():
            head(*args)

    def reference() -> None:
        with torch.no_grad():
            ctx = {k: per_person(c) for k, c in head.contexts(*args).items()}
            head.classifier(feats + head.ia(feats, ctx))

    return timed(ours, repeats), timed(reference, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/results/model_cost.json"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    result: dict[str, object] = {"torch_threads": torch.get_num_threads()}
    result["tiny_train_step_batch2_s"] = tiny_train_step(args.repeats)
    print(f"tiny forward+backward, batch of 2 clips: {result['tiny_train_step_batch2_s']:.3f} s")
    rows = []
    print(f"r50 head, 305 memory slots: {'persons':>7} {'ours s':>8} {'per-person s':>12} ratio")
    for persons in (1, 5, 10, 20):
        ours, ref = head_times(persons, args.repeats)
        rows.append({"persons": persons, "ours_s": ours, "per_person_s": ref, "ratio": ref / ours})
        print(f"{'':28}{persons:>7} {ours:>8.3f} {ref:>12.3f} {ref / ours:5.1f}x")
    result["r50_head"] = rows
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    chart(rows, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


def chart(rows: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    persons = [r["persons"] for r in rows]
    ax.plot(persons, [r["ours_s"] for r in rows], "o-", label="memory projected once per clip")
    ax.plot(persons, [r["per_person_s"] for r in rows], "s--", label="once per person (reference)")
    ax.set_xlabel("persons in the clip")
    ax.set_ylabel("r50 head time on CPU (s)")
    ax.set_title("IA head cost, 305 memory slots")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
