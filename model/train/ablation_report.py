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
FROZEN = "dense serial, frozen memory"
JOINT = "dense serial, joint memory"
# family -> the variant that lacks the block deciding it (the full model minus one block type);
# pose and lamp are the person's own business at the key frame, so no block decides them
REMOVALS = {"temporal": "P+O", "person": "O+M, M without second 0", "object": "P+M"}
TOLERANCE = 0.02  # dense serial >= serial >= parallel, each up to this much below
FAMILIES = ("pose", "object", "person", "lamp", "temporal")


@dataclass(frozen=True)
class Goal:
    text: str
    target: float
    measured: float | None  # None: a run the goal needs has no validation yet
    step: str | None = None  # the validation step it was measured at
    spread: float | None = None  # sample sd over paired seeds (None: one seed)

    @property
    def met(self) -> bool | None:
        return None if self.measured is None else self.measured >= self.target - 1e-9

    @property
    def inside_spread(self) -> bool:
        """The mean lies within one sd of the target: the seeds cannot settle the goal."""
        return (self.measured is not None and self.spread is not None
                and abs(self.measured - self.target) <= self.spread)

    def verdict(self) -> str:
        if self.met is None:
            return "not measured"
        text = "met" if self.met else f"missed by {self.target - self.measured:.3f}"  # type: ignore[operator]
        return text + (f" (inside the spread, sd {self.spread:.3f})" if self.inside_spread
                       else "")


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


def _sd(xs: list[float]) -> float | None:
    return statistics.stdev(xs) if len(xs) > 1 else None


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One variant's seeds -> mean (and sd) at the last step every seed reached, the mean curve
    over the steps all reached, the median step time; {} when no seed has validated."""
    if not runs:
        return {}
    common = set.intersection(*(set(r["curve"]) for r in runs))
    if not common:
        return {}
    curve = {}
    for step in sorted(common, key=int):
        points = [r["curve"][step] for r in runs]
        fams = set.intersection(*(set(p["families"]) for p in points))
        curve[step] = {"map": statistics.fmean(p["map"] for p in points), "families": {
            f: statistics.fmean(p["families"][f] for p in points) for f in sorted(fams)}}
    last = max(common, key=int)
    points = [r["curve"][last] for r in runs]
    times = [r["step_s"] for r in runs if r.get("step_s") is not None]
    return {"step": int(last), "map": curve[last]["map"], "families": curve[last]["families"],
            "map_sd": _sd([p["map"] for p in points]),
            "families_sd": {f: _sd([p["families"][f] for p in points])
                            for f in curve[last]["families"]},
            "curve": curve, "step_s": statistics.median(times) if times else None}


def _value(point: dict[str, Any], family: str | None) -> float | None:
    return point["map"] if family is None else point["families"].get(family)


def _by_seed(row: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """A variant's validated runs by seed."""
    return {s: r for s, r in zip(row.get("seeds", []), row.get("runs", []), strict=True) if r}


def _compare(rows: dict[str, dict[str, Any]], a: str, b: str, family: str | None = None
             ) -> tuple[float | None, str | None, float | None]:
    """Mean over paired seeds of mAP (or a family's) of a minus b at the last validated step
    every seed of both reached, that step, and the sd of the paired differences."""
    runs_a, runs_b = _by_seed(rows.get(a, {})), _by_seed(rows.get(b, {}))
    paired = sorted(set(runs_a) & set(runs_b))
    if not paired:
        return None, None, None
    steps = [set(runs_a[s]["curve"]) & set(runs_b[s]["curve"]) for s in paired]
    common = set.intersection(*steps)
    if not common:
        return None, None, None
    step = max(common, key=int)
    diffs = []
    for s in paired:
        va = _value(runs_a[s]["curve"][step], family)
        vb = _value(runs_b[s]["curve"][step], family)
        if va is None or vb is None:
            return None, step, None
        diffs.append(va - vb)
    return statistics.fmean(diffs), step, _sd(diffs)


def check_goals(results: list[dict[str, Any]], full_map: float = 0.80,
                family_drop: float = 0.25, baseline_gap: float = 0.20) -> list[Goal]:
    """The issue's goals for the synthetic validation set, measured on these results (means over
    seeds); a comparison pairs the two variants' runs of the same seed at the last step all of
    them were validated at (`Goal.step`)."""
    rows = {r["variant"]: r for r in results}
    full = rows.get(FULL, {})
    goals = [Goal(f"{FULL}: overall mAP >= {full_map:.2f}", full_map, full.get("map"),
                  None if "step" not in full else str(full["step"]), full.get("map_sd"))]
    for family, variant in REMOVALS.items():
        drop, step, sd = _compare(rows, FULL, variant, family)
        goals.append(Goal(f"{family} mAP drops by >= {family_drop:.2f} without its block "
                          f"({FULL} - {variant})", family_drop, drop, step, sd))
    gap, step, sd = _compare(rows, FULL, BASELINE)
    goals.append(Goal(f"{BASELINE} at least {baseline_gap:.2f} below {FULL}", baseline_gap,
                      gap, step, sd))
    for better, worse in ((FULL, SERIAL), (SERIAL, PARALLEL)):
        diff, step, sd = _compare(rows, better, worse)
        goals.append(Goal(f"{better} >= {worse} - {TOLERANCE:.2f}", -TOLERANCE, diff, step, sd))
    diff, step, sd = _compare(rows, FULL, FROZEN, "temporal")
    goals.append(Goal(f"temporal: AMU ({FULL}) >= frozen memory + 0.03", 0.03, diff, step, sd))
    diff, step, sd = _compare(rows, FULL, JOINT)
    goals.append(Goal(f"AMU ({FULL}) within {TOLERANCE:.2f} of joint memory", -TOLERANCE, diff,
                      step, sd))
    amu_s, joint_s = full.get("step_s"), rows.get(JOINT, {}).get("step_s")
    goals.append(Goal("joint memory's step time >= 2x AMU's", 2.0,
                      joint_s / amu_s if amu_s and joint_s else None))
    return goals


def _fmt(x: float | None, sd: float | None = None) -> str:
    if x is None:
        return "-"
    return f"{x:.3f}" if sd is None else f"{x:.3f} ± {sd:.3f}"


def families_of(results: list[dict[str, Any]]) -> list[str]:
    """The synthetic benchmark's families in label order, then any others alphabetically."""
    found = {f for r in results for f in r.get("families", {})}
    return [f for f in FAMILIES if f in found] + sorted(found - set(FAMILIES))


def render_markdown(results: list[dict[str, Any]], goals: list[Goal],
                    commands: list[str]) -> str:
    families = families_of(results)
    head = ["variant", "blocks", "structure", "memory", "seeds", "steps", "mAP", *families,
            "params (M)", "step (s)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        sds = r.get("families_sd", {})
        fam = [_fmt(r.get("families", {}).get(f), sds.get(f)) for f in families]
        done = sum(1 for run in r.get("runs", []) if run)
        lines.append("| " + " | ".join([
            r["variant"], r["blocks"], r["structure"], r["memory"],
            f"{done}/{len(r.get('seeds', []))}", str(r.get("step", "-")),
            _fmt(r.get("map"), r.get("map_sd")), *fam,
            _fmt(r["params"] / 1e6 if r["params"] else None), _fmt(r.get("step_s"))]) + " |")
    lines += ["", "Cells are the mean over the seeds that finished, ± their sample sd (none with "
              "one seed), at the last step all of them were validated at.", "",
              "| variant | validation mAP by step (mean over seeds) |", "|---|---|"]
    for r in results:
        curve = ", ".join(f"{s}: {p['map']:.3f}" for s, p in r.get("curve", {}).items()) or "-"
        lines.append(f"| {r['variant']} | {curve} |")
    lines += ["", "Goals (the issue's, on the synthetic validation set; a difference is the mean "
              "over seeds of paired runs, sd the spread of those differences):", "",
              "| goal | target | measured | sd | at step | verdict |", "|---|---|---|---|---|---|"]
    lines += [f"| {g.text} | {g.target:.2f} | {_fmt(g.measured)} | {_fmt(g.spread)} | "
              f"{g.step or '-'} | {g.verdict()} |" for g in goals]
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
                                         "measured": g.measured, "step": g.step, "met": g.met,
                                         "sd": g.spread, "inside_spread": g.inside_spread}
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
           yerr=[r.get("map_sd") or 0 for r in results], label="overall", color="black")
    for i, fam in enumerate(families, start=1):
        ax.bar([x - 0.4 + width * (i + 0.5) for x in xs],
               [r.get("families", {}).get(fam, 0) for r in results], width, label=fam,
               yerr=[(r.get("families_sd", {}).get(fam) or 0) for r in results])
    labels = [r["variant"] + ("" if r.get("step") is None else f"\n({r['step']} steps)")
              for r in results]
    ax.set_xticks(list(xs), labels, rotation=30, ha="right", fontsize=8)
    ax.set(ylabel="validation frame mAP", ylim=(0, 1), title="Ablation on the synthetic benchmark")
    ax.legend(fontsize=8, ncols=len(families) + 1, loc="upper left")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
