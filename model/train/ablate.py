"""`aia ablate`: the paper's Table 1 on the synthetic benchmark.

Trains each variant with the same recipe (a base YAML config plus the variant's overrides),
then writes `ablation.md` (overall and per-family mAP, parameters, step time), `ablation.json`
and a bar chart. Variants already finished in `--out` are read back, not retrained, so an
interrupted ablation continues where it stopped (each run also resumes its own checkpoints).
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.train.config import load


@dataclass(frozen=True)
class Variant:
    name: str
    blocks: str  # "" = no IA
    structure: str
    memory: str


VARIANTS: tuple[Variant, ...] = (
    Variant("baseline (no IA)", "", "serial", "none"),
    Variant("P+O", "POPO", "serial", "none"),
    Variant("P+M", "PMPM", "serial", "amu"),
    Variant("O+M", "OMOM", "serial", "amu"),
    Variant("P+O+M serial", "POMPOM", "serial", "amu"),
    Variant("P+O+M parallel", "POMPOM", "parallel", "amu"),
    Variant("P+O+M dense serial", "POMPOM", "dense", "amu"),
    Variant("dense serial, joint memory", "POMPOM", "dense", "joint"),
    Variant("dense serial, frozen memory", "POMPOM", "dense", "frozen"),
)


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-").replace("--", "-")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="dataset directory (aia synth output)")
    parser.add_argument("--out", required=True, type=Path, help="where runs and tables go")
    parser.add_argument("--config", default="configs/synth-tiny.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="applied to every variant")
    parser.add_argument("--only", nargs="+", help="variant names (or slugs) to run")


def variant_overrides(v: Variant, data: str, out: Path) -> list[str]:
    return [f"data.root={data}", f"out_dir={out / slug(v.name)}", f"memory.mode={v.memory}",
            f"model.overrides.ia.blocks={json.dumps(list(v.blocks))}",
            f"model.overrides.ia.structure={v.structure}"]


def summarise(run: Path) -> dict[str, Any] | None:
    """Final validation and median step time of a finished run, or None."""
    log = run / "metrics.jsonl"
    if not log.is_file():
        return None
    records = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    vals = [r for r in records if "val_map" in r]
    steps = [r["step_s"] for r in records if "step_s" in r]
    if not vals:
        return None
    last = vals[-1]
    return {"step": last["step"], "map": last["val_map"],
            "families": {k[8:]: v for k, v in last.items() if k.startswith("val_map_")},
            "step_s": statistics.median(steps) if steps else None}


def run(args: argparse.Namespace) -> int:
    from model.config import from_dict
    from model.network import build_aia
    from model.train.checkpoint import CheckpointDir
    from model.train.checkpoint import load as load_checkpoint
    from model.train.loop import train

    chosen = [v for v in VARIANTS if not args.only or v.name in args.only
              or slug(v.name) in args.only]
    results = []
    for v in chosen:
        cfg = load(args.config, [*args.overrides, *variant_overrides(v, args.data, args.out)])
        summary = summarise(Path(cfg.out_dir))
        if summary is None or summary["step"] < cfg.schedule.max_steps:
            print(f"== {v.name}: training to step {cfg.schedule.max_steps}", flush=True)
            train(cfg, resume="auto")
            summary = summarise(Path(cfg.out_dir))
        latest = CheckpointDir(cfg.out_dir, 1).latest()
        params = 0
        if latest is not None:
            params = sum(p.numel() for p in build_aia(
                from_dict(load_checkpoint(latest)["model_config"])).parameters())
        results.append({"variant": v.name, "blocks": v.blocks or "-",
                        "structure": v.structure, "memory": v.memory, "params": params,
                        **(summary or {})})
    write_tables(results, args.out)
    return 0


def write_tables(results: list[dict[str, Any]], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.json").write_text(json.dumps(results, indent=2))
    families = sorted({f for r in results for f in r.get("families", {})})
    head = ["variant", "blocks", "structure", "memory", "mAP", *families, "params (M)",
            "step (s)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        fam = [f"{r.get('families', {}).get(f, float('nan')):.3f}" for f in families]
        step = f"{r['step_s']:.3f}" if r.get("step_s") is not None else "-"
        lines.append("| " + " | ".join([r["variant"], r["blocks"], r["structure"], r["memory"],
                                          f"{r.get('map', float('nan')):.3f}", *fam,
                                          f"{r['params'] / 1e6:.3f}", step]) + " |")
    (out / "ablation.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(8, 1.2 * len(results)), 4))
    width = 0.8 / (len(families) + 1)
    xs = range(len(results))
    ax.bar([x - 0.4 + width / 2 for x in xs], [r.get("map", 0) for r in results], width,
           label="overall", color="black")
    for i, fam in enumerate(families, start=1):
        ax.bar([x - 0.4 + width * (i + 0.5) for x in xs],
               [r.get("families", {}).get(fam, 0) for r in results], width, label=fam)
    ax.set_xticks(list(xs), [r["variant"] for r in results], rotation=30, ha="right",
                  fontsize=8)
    ax.set(ylabel="validation frame mAP", ylim=(0, 1), title="Ablation on the synthetic benchmark")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "ablation.png", dpi=110)
    plt.close(fig)
