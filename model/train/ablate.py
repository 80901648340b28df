"""`aia ablate`: the paper's Table 1 on the synthetic benchmark.

Trains each variant with the same recipe (a base YAML config plus the variant's overrides),
then writes `ablation.md` (overall and per-family mAP, parameters, step time, the issue's goals
checked), `ablation.json` and a bar chart (model/train/ablation_report.py). `--seeds N` trains
every variant N times (config seed, seed + 1, ...; seed by seed, so a stopped ablation has whole
seeds), into `--out/<variant>/seed-<seed>`; the report gives means and spreads. Runs already
finished are read back, not retrained, so an interrupted ablation continues where it stopped
(each run also resumes its own checkpoints); `--table-only` trains nothing.
"""

from __future__ import annotations

import argparse
import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from model.train.ablation_report import combine, summarise, write_report
from model.train.config import load


@dataclass(frozen=True)
class Variant:
    name: str
    blocks: str  # "" = no IA
    structure: str
    memory: str
    # M blocks see the key second's own persons; "without P" turns this off too, or its M
    # blocks would read the partner at second 0 (generator v2, one seed: O+M scored 0.718 on
    # the person family, the full model 0.714)
    memory_current: bool = True


VARIANTS: tuple[Variant, ...] = (
    Variant("baseline (no IA)", "", "serial", "none"),
    Variant("P+O", "POPO", "serial", "none"),
    Variant("P+M", "PMPM", "serial", "amu"),
    Variant("O+M, M without second 0", "OMOM", "serial", "amu", memory_current=False),
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
    parser.add_argument("--seeds", type=int, default=1,
                        help="runs per variant, seeded from the config's seed upwards")
    parser.add_argument("--table-only", action="store_true",
                        help="train nothing: tabulate what the runs in --out have reached")
    parser.add_argument("--report", type=Path,
                        help="where ablation.md/.json/.png go (default: --out)")


def variant_overrides(v: Variant, data: str, out: Path, seed: int) -> list[str]:
    return [f"data.root={data}", f"out_dir={out / slug(v.name) / f'seed-{seed}'}",
            f"seed={seed}", f"memory.mode={v.memory}",
            f"model.overrides.ia.blocks={json.dumps(list(v.blocks))}",
            f"model.overrides.ia.structure={v.structure}",
            f"model.overrides.ia.memory_current={json.dumps(v.memory_current)}"]


def run(args: argparse.Namespace) -> int:
    from model.train.loop import train

    if args.seeds < 1:
        raise SystemExit("aia ablate: --seeds must be >= 1")
    chosen = [v for v in VARIANTS if not args.only or v.name in args.only
              or slug(v.name) in args.only]
    first = load(args.config, args.overrides).seed
    seeds = list(range(first, first + args.seeds))
    runs: dict[str, list[dict | None]] = {v.name: [] for v in chosen}
    commands: list[str] = []
    params: dict[str, int] = {}
    for seed in seeds:  # seed-major: an ablation stopped early has whole seeds
        for v in chosen:
            cfg = load(args.config, [*args.overrides,
                                     *variant_overrides(v, args.data, args.out, seed)])
            summary = summarise(Path(cfg.out_dir))
            finished = summary is not None and summary["step"] >= cfg.schedule.max_steps
            if not finished and not args.table_only:
                print(f"== {v.name}, seed {seed}: training to step {cfg.schedule.max_steps}",
                      flush=True)
                train(cfg, resume="auto")
                summary = summarise(Path(cfg.out_dir))
            runs[v.name].append(summary)
            count, command = checkpoint_facts(Path(cfg.out_dir))
            params[v.name] = params.get(v.name) or count
            if command and command not in commands:
                commands.append(command)
    results = [{"variant": v.name, "blocks": v.blocks or "-", "structure": v.structure,
                "memory": v.memory, "memory_current": v.memory_current,
                "params": params[v.name], "run": str(args.out / slug(v.name)), "seeds": seeds,
                "runs": runs[v.name], **combine([r for r in runs[v.name] if r])}
               for v in chosen]
    report = args.report or args.out
    goals = write_report(results, report, commands)
    print(f"wrote {report / 'ablation.md'}")
    for goal in goals:
        print(f"  {goal.verdict():>22}  {goal.text}")
    return 0


def checkpoint_facts(run: Path) -> tuple[int, str]:
    """(parameters, the command line that trained it) from a run's latest checkpoint."""
    from model.config import from_dict
    from model.network import build_aia
    from model.train.checkpoint import CheckpointDir
    from model.train.checkpoint import load as load_checkpoint

    latest = CheckpointDir(run, 1).latest()
    if latest is None:
        return 0, ""
    state = load_checkpoint(latest)
    params = sum(p.numel() for p in build_aia(from_dict(state["model_config"])).parameters())
    return params, shlex.join(state.get("command", []))
