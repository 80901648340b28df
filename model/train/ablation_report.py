"""`aia ablate`'s report: what each run reached, the issue's goals checked against it, the table
(`ablation.md`), the raw numbers (`ablation.json`) and a bar chart (`ablation.png`).

A run is read from its `metrics.jsonl` (validation records carry `val_map` and `val_map_<family>`);
`ablate.checkpoint_facts` adds its parameters and the command line that trained it.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FULL = "P+O+M dense serial"
SERIAL = "P+O+M serial"
PARALLEL = "P+O+M parallel"
BASELINE = "baseline (no IA)"
# family -> the variant that lacks the block deciding it (the full model minus one block type)
REMOVALS = {"temporal": "P+O", "person": "O+M", "object": "P+M"}
TOLERANCE = 0.02  # dense serial >= serial >= parallel, each up to this much below
FAMILIES = ("pose", "object", "person", "temporal")


@dataclass(frozen=True)
class Goal:
    text: str
    target: float
    measured: float | None  # None: a run the goal needs has no validation yet
    step: str | None = None  # the validation step it was measured at

    @property
    def met(self) -> bool | None:
        return None if self.measured is None else self.measured >= self.target - 1e-9

    def verdict(self) -> str:
        if self.met is None:
            return "not measured"
        if self.met:
            return "met"
        return f"missed by {self.target - self.measured:.3f}"  # type: ignore[operator]


def summarise(run: Path) -> dict[str, Any] | None:
    """Last validation, the validation curve and the median step time of a run, or None."""
    log = run / "metrics.jsonl"
    if not log.is_file():
        return None
    records = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    vals = [r for r in records if "val_map" in r]
    steps = [r["step_s"] for r in records if "step_s" in r]
    if not vals:
        return None
    curve = {str(r["step"]): {"map": r["val_map"], "families": {
        k[8:]: v for k, v in r.items() if k.startswith("val_map_")}} for r in vals}
    last = curve[str(vals[-1]["step"])]
    return {"step": vals[-1]["step"], "map": last["map"], "families": last["families"],
            "curve": curve, "step_s": statistics.median(steps) if steps else None}


def _common_step(rows: dict[str, dict[str, Any]], variants: tuple[str, ...]) -> str | None:
    """The last validated step that every one of `variants` reached, or None."""
    curves = [set(rows.get(v, {}).get("curve", {})) for v in variants]
    common = set.intersection(*curves) if curves else set()
    return max(common, key=int) if common else None


def _compare(rows: dict[str, dict[str, Any]], a: str, b: str,
             family: str | None = None) -> tuple[float | None, str | None]:
    """mAP (or a family's) of a minus b at their last common validated step, and that step."""
    step = _common_step(rows, (a, b))
    if step is None:
        return None, None
    pa, pb = rows[a]["curve"][step], rows[b]["curve"][step]
    if family is None:
        return pa["map"] - pb["map"], step
    if family not in pa["families"] or family not in pb["families"]:
        return None, step
    return pa["families"][family] - pb["families"][family], step


def check_goals(results: list[dict[str, Any]], full_map: float = 0.80,
                family_drop: float = 0.25, baseline_gap: float = 0.20) -> list[Goal]:
    """The issue's goals for the synthetic validation set, measured on these results; a
    comparison is made at the last step both runs were validated at (`Goal.step`)."""
    rows = {r["variant"]: r for r in results}
    full = rows.get(FULL, {})
    goals = [Goal(f"{FULL}: overall mAP >= {full_map:.2f}", full_map, full.get("map"),
                  None if "step" not in full else str(full["step"]))]
    for family, variant in REMOVALS.items():
        drop, step = _compare(rows, FULL, variant, family)
        goals.append(Goal(f"{family} mAP drops by >= {family_drop:.2f} without its block "
                          f"({FULL} - {variant})", family_drop, drop, step))
    gap, step = _compare(rows, FULL, BASELINE)
    goals.append(Goal(f"{BASELINE} at least {baseline_gap:.2f} below {FULL}", baseline_gap,
                      gap, step))
    for better, worse in ((FULL, SERIAL), (SERIAL, PARALLEL)):
        diff, step = _compare(rows, better, worse)
        goals.append(Goal(f"{better} >= {worse} - {TOLERANCE:.2f}", -TOLERANCE, diff, step))
    return goals


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def families_of(results: list[dict[str, Any]]) -> list[str]:
    """The synthetic benchmark's families in label order, then any others alphabetically."""
    found = {f for r in results for f in r.get("families", {})}
    return [f for f in FAMILIES if f in found] + sorted(found - set(FAMILIES))


def render_markdown(results: list[dict[str, Any]], goals: list[Goal],
                    commands: list[str]) -> str:
    families = families_of(results)
    head = ["variant", "blocks", "structure", "memory", "steps", "mAP", *families,
            "params (M)", "step (s)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        fam = [_fmt(r.get("families", {}).get(f)) for f in families]
        lines.append("| " + " | ".join([
            r["variant"], r["blocks"], r["structure"], r["memory"], str(r.get("step", "-")),
            _fmt(r.get("map")), *fam, _fmt(r["params"] / 1e6 if r["params"] else None),
            _fmt(r.get("step_s"))]) + " |")
    lines += ["", "| variant | validation mAP by step |", "|---|---|"]
    for r in results:
        curve = ", ".join(f"{s}: {p['map']:.3f}" for s, p in r.get("curve", {}).items()) or "-"
        lines.append(f"| {r['variant']} | {curve} |")
    lines += ["", "Goals (the issue's, on the synthetic validation set):", "",
              "| goal | target | measured | at step | verdict |", "|---|---|---|---|---|"]
    lines += [f"| {g.text} | {g.target:.2f} | {_fmt(g.measured)} | {g.step or '-'} | "
              f"{g.verdict()} |" for g in goals]
    if commands:
        lines += ["", "Trained by:", "", "```sh", *commands, "```"]
    return "\n".join(lines) + "\n"


def write_report(results: list[dict[str, Any]], out: Path,
                 commands: list[str] | None = None) -> list[Goal]:
    """ablation.json, ablation.md and ablation.png in `out`; returns the goals checked."""
    out.mkdir(parents=True, exist_ok=True)
    goals = check_goals(results)
    (out / "ablation.json").write_text(json.dumps(
        {"variants": results, "goals": [{"goal": g.text, "target": g.target,
                                         "measured": g.measured, "step": g.step, "met": g.met}
                                        for g in goals]}, indent=2))
    (out / "ablation.md").write_text(render_markdown(results, goals, commands or []))
    plot(results, out / "ablation.png")
    return goals


def plot(results: list[dict[str, Any]], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = families_of(results)
    fig, ax = plt.subplots(figsize=(max(8, 1.2 * len(results)), 4.2))
    width = 0.8 / (len(families) + 1)
    xs = range(len(results))
    ax.bar([x - 0.4 + width / 2 for x in xs], [r.get("map", 0) for r in results], width,
           label="overall", color="black")
    for i, fam in enumerate(families, start=1):
        ax.bar([x - 0.4 + width * (i + 0.5) for x in xs],
               [r.get("families", {}).get(fam, 0) for r in results], width, label=fam)
    labels = [r["variant"] + ("" if r.get("step") is None else f"\n({r['step']} steps)")
              for r in results]
    ax.set_xticks(list(xs), labels, rotation=30, ha="right", fontsize=8)
    ax.set(ylabel="validation frame mAP", ylim=(0, 1), title="Ablation on the synthetic benchmark")
    ax.legend(fontsize=8, ncols=len(families) + 1, loc="upper left")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
