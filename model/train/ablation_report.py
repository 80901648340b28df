"""`aia ablate`'s report: what each run reached, the issue's goals checked against it, the table
(`ablation.md`), the raw numbers (`ablation.json`) and a bar chart (`ablation.png`).

A run is read from its `metrics.jsonl` (validation records carry `val_map` and `val_map_<family>`)
and its latest checkpoint (parameters, the command line that trained it).
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


@dataclass(frozen=True)
class Goal:
    text: str
    target: float
    measured: float | None  # None: a run the goal needs has no validation yet

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
    last = vals[-1]
    return {"step": last["step"], "map": last["val_map"],
            "families": {k[8:]: v for k, v in last.items() if k.startswith("val_map_")},
            "curve": {str(r["step"]): r["val_map"] for r in vals},
            "step_s": statistics.median(steps) if steps else None}


def _map(rows: dict[str, dict[str, Any]], variant: str, family: str | None = None) -> float | None:
    row = rows.get(variant)
    if row is None or "map" not in row:
        return None
    return row["map"] if family is None else row.get("families", {}).get(family)


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def check_goals(results: list[dict[str, Any]], full_map: float = 0.80,
                family_drop: float = 0.25, baseline_gap: float = 0.20) -> list[Goal]:
    """The issue's goals for the synthetic validation set, measured on these results."""
    rows = {r["variant"]: r for r in results}
    goals = [Goal(f"{FULL}: overall mAP >= {full_map:.2f}", full_map, _map(rows, FULL))]
    for family, variant in REMOVALS.items():
        drop = _diff(_map(rows, FULL, family), _map(rows, variant, family))
        goals.append(Goal(f"{family} mAP drops by >= {family_drop:.2f} without its block "
                          f"({FULL} - {variant})", family_drop, drop))
    goals.append(Goal(f"{BASELINE} at least {baseline_gap:.2f} below {FULL}", baseline_gap,
                      _diff(_map(rows, FULL), _map(rows, BASELINE))))
    goals.append(Goal(f"{FULL} >= {SERIAL} - {TOLERANCE:.2f}", -TOLERANCE,
                      _diff(_map(rows, FULL), _map(rows, SERIAL))))
    goals.append(Goal(f"{SERIAL} >= {PARALLEL} - {TOLERANCE:.2f}", -TOLERANCE,
                      _diff(_map(rows, SERIAL), _map(rows, PARALLEL))))
    return goals


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def render_markdown(results: list[dict[str, Any]], goals: list[Goal],
                    commands: list[str]) -> str:
    families = sorted({f for r in results for f in r.get("families", {})})
    head = ["variant", "blocks", "structure", "memory", "steps", "mAP", *families,
            "params (M)", "step (s)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        fam = [_fmt(r.get("families", {}).get(f)) for f in families]
        lines.append("| " + " | ".join([
            r["variant"], r["blocks"], r["structure"], r["memory"], str(r.get("step", "-")),
            _fmt(r.get("map")), *fam, f"{r['params'] / 1e6:.3f}", _fmt(r.get("step_s"))]) + " |")
    lines += ["", "| variant | validation mAP by step |", "|---|---|"]
    for r in results:
        curve = ", ".join(f"{s}: {m:.3f}" for s, m in r.get("curve", {}).items()) or "-"
        lines.append(f"| {r['variant']} | {curve} |")
    lines += ["", "Goals (the issue's, on the synthetic validation set):", "",
              "| goal | target | measured | verdict |", "|---|---|---|---|"]
    lines += [f"| {g.text} | {g.target:.2f} | {_fmt(g.measured)} | {g.verdict()} |"
              for g in goals]
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
                                         "measured": g.measured, "met": g.met}
                                        for g in goals]}, indent=2))
    (out / "ablation.md").write_text(render_markdown(results, goals, commands or []))
    plot(results, out / "ablation.png")
    return goals


def plot(results: list[dict[str, Any]], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = sorted({f for r in results for f in r.get("families", {})})
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
