from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cli.main import main
from model.train.ablate import VARIANTS
from model.train.ablation_report import check_goals, combine, render_markdown
from tests.model.train.conftest import overrides

CONFIG = Path(__file__).parents[3] / "configs" / "synth-tiny.yaml"


def test_ablate_trains_variants_and_tabulates(toy_root, tmp_path) -> None:
    out = tmp_path / "ablation"
    sets = [o for o in overrides(toy_root, out, 2) if not o.startswith(("data.root", "out_dir"))]
    sets += ["data.workers=0", "data.cache_dir=null", "data.person_threshold=0.5"]
    args = ["ablate", "--data", str(toy_root), "--out", str(out), "--config", str(CONFIG),
            "--only", "baseline-no-ia", "p-o-m-dense-serial"]
    for item in sets:
        args += ["--set", item]
    assert main(args) == 0
    report = json.loads((out / "ablation.json").read_text())
    rows = report["variants"]
    assert [r["variant"] for r in rows] == ["baseline (no IA)", "P+O+M dense serial"]
    assert all(r["step"] == 2 and 0 <= r["map"] <= 1 for r in rows)
    assert rows[0]["params"] < rows[1]["params"]
    table = (out / "ablation.md").read_text()
    assert "| P+O+M dense serial | POMPOM | dense | amu | 1/1 | 2 |" in table
    assert "Trained by:" in table  # the command lines stored in the runs' checkpoints
    # goals needing variants that were not run are reported as such, never as met
    goals = {g["goal"]: g for g in report["goals"]}
    gap = goals["baseline (no IA) at least 0.20 below P+O+M dense serial"]
    assert gap["measured"] == rows[1]["map"] - rows[0]["map"]
    unmeasured = [g for name, g in goals.items() if "P+O " in name or "serial -" in name]
    assert all(g["met"] is None for g in unmeasured)
    assert (out / "ablation.png").stat().st_size > 0
    # a finished variant is read back, not retrained
    log = out / "baseline-no-ia" / "seed-0" / "metrics.jsonl"
    mtime = log.stat().st_mtime
    assert main(args) == 0
    assert log.stat().st_mtime == mtime


def test_ablate_seeds_train_each_variant_per_seed(toy_root, tmp_path) -> None:
    out = tmp_path / "ablation"
    sets = [o for o in overrides(toy_root, out, 2) if not o.startswith(("data.root", "out_dir"))]
    sets += ["data.workers=0", "data.cache_dir=null", "data.person_threshold=0.5", "seed=5"]
    args = ["ablate", "--data", str(toy_root), "--out", str(out), "--config", str(CONFIG),
            "--only", "o-m-m-without-second-0", "--seeds", "2"]
    for item in sets:
        args += ["--set", item]
    assert main(args) == 0
    row = json.loads((out / "ablation.json").read_text())["variants"][0]
    assert row["seeds"] == [5, 6]
    assert row["memory_current"] is False
    assert [r["step"] for r in row["runs"]] == [2, 2]
    maps = [r["map"] for r in row["runs"]]
    assert row["map"] == pytest.approx(sum(maps) / 2)
    assert row["map_sd"] is not None
    assert row["map_sd"] >= 0
    for seed in (5, 6):
        state = torch.load(out / "o-m-m-without-second-0" / f"seed-{seed}" / "checkpoints" /
                           "step-00000002.pt", weights_only=False)
        assert state["model_config"]["ia"]["memory_current"] is False
    assert "| 2/2 | 2 |" in (out / "ablation.md").read_text()


def test_table_only_trains_nothing(toy_root, tmp_path) -> None:
    out = tmp_path / "ablation"
    args = ["ablate", "--data", str(toy_root), "--out", str(out), "--config", str(CONFIG),
            "--table-only", "--report", str(tmp_path / "report")]
    assert main(args) == 0
    assert not any(p.is_dir() for p in out.glob("*"))  # no run started
    rows = json.loads((tmp_path / "report" / "ablation.json").read_text())["variants"]
    assert len(rows) == len(VARIANTS)
    assert all("map" not in r for r in rows)
    assert "not measured" in (tmp_path / "report" / "ablation.md").read_text()


def _run(overall: float, step: int, families: dict[str, float],
         step_s: float | None = None) -> dict[str, object]:
    return {"step": step, "map": overall, "families": families, "step_s": step_s,
            "curve": {str(step): {"map": overall, "families": families}}}


def _row(variant: str, overall: float, step: int = 100, **families: float) -> dict[str, object]:
    run = _run(overall, step, families)
    return {"variant": variant, "blocks": "-", "structure": "serial", "memory": "amu",
            "params": 1000, "seeds": [0], "runs": [run], **combine([run])}


def test_goals_measure_the_issue_targets() -> None:
    fam = {"pose": 0.9, "object": 0.9, "person": 0.9, "temporal": 0.9}
    results = [
        _row("baseline (no IA)", 0.55, **fam),
        _row("P+O", 0.7, **{**fam, "temporal": 0.5}),   # temporal drops 0.4: met
        _row("P+M", 0.7, **{**fam, "object": 0.75}),    # object drops 0.15: missed by 0.10
        _row("O+M, M without second 0", 0.7, **{**fam, "person": 0.6}),  # drops 0.3: met
        _row("P+O+M serial", 0.86, **fam),
        _row("P+O+M parallel", 0.87, **fam),            # serial 0.01 below parallel: met
        _row("P+O+M dense serial", 0.82, **fam),        # 0.04 below serial: missed by 0.02
    ]
    goals = check_goals(results)
    assert [g.verdict() for g in goals] == [
        "met", "met", "met", "missed by 0.100", "met", "missed by 0.020", "met",
        "not measured", "not measured", "not measured"]
    assert goals[1].measured == pytest.approx(0.4)  # temporal: 0.9 - 0.5
    assert goals[4].measured == pytest.approx(0.27)  # baseline gap: 0.82 - 0.55
    assert {g.step for g in goals[:7]} == {"100"}
    text = render_markdown(results, goals, ["aia ablate --data d --out o"])
    assert "| 0.20 | 0.270 | - | 100 | met |" in text
    assert "| object mAP drops by >= 0.25 without its block (P+O+M dense serial - P+M) | 0.25 " \
           "| 0.150 | - | 100 | missed by 0.100 |" in text
    assert "aia ablate --data d --out o" in text


def test_goals_compare_runs_at_their_last_common_step() -> None:
    """A run stopped early is compared at a step both reached, never against a longer one."""
    fam = {"pose": 0.9, "object": 0.9, "person": 0.9, "temporal": 0.9}
    full = _row("P+O+M dense serial", 0.6, step=2000, **fam)
    full["runs"][0]["curve"]["1000"] = {"map": 0.5, "families": fam}
    results = [full, _row("baseline (no IA)", 0.45, step=1000, **fam),
               _row("P+O", 0.5, step=2000, **fam)]
    goals = {g.text.split(" ")[0]: g for g in check_goals(results)}
    assert goals["baseline"].step == "1000"
    assert goals["baseline"].measured == pytest.approx(0.05)  # 0.5 - 0.45, not 0.6 - 0.45
    assert goals["temporal"].step == "2000"
    assert goals["person"].measured is None  # no O+M run
    assert goals["person"].verdict() == "not measured"


def test_goals_pair_seeds_and_flag_differences_inside_the_spread() -> None:
    """Differences are paired by seed; a mean within one sd of its target says so."""
    fam = {"pose": 0.9, "object": 0.9, "person": 0.9, "temporal": 0.6}

    def variant(name: str, maps: list[float], temporal: list[float], step_s: float) -> dict:
        runs = [_run(m, 100, {**fam, "temporal": t}, step_s)
                for m, t in zip(maps, temporal, strict=True)]
        return {"variant": name, "blocks": "-", "structure": "serial", "memory": "amu",
                "params": 1, "seeds": [0, 1, 2], "runs": runs, **combine(runs)}

    full = variant("P+O+M dense serial", [0.80, 0.84, 0.82], [0.60, 0.70, 0.65], 1.0)
    frozen = variant("dense serial, frozen memory", [0.79, 0.80, 0.81], [0.58, 0.66, 0.61], 0.7)
    joint = variant("dense serial, joint memory", [0.81, 0.85, 0.83], [0.6, 0.7, 0.65], 3.0)
    goals = {g.text: g for g in check_goals([full, frozen, joint])}
    assert full["map"] == pytest.approx(0.82)
    assert full["map_sd"] == pytest.approx(0.02)
    amu = goals["temporal: AMU (P+O+M dense serial) >= frozen memory + 0.03"]
    assert amu.measured == pytest.approx(0.10 / 3)  # paired: 0.02, 0.04, 0.04
    assert amu.spread == pytest.approx(0.011547, abs=1e-5)
    assert amu.met
    assert amu.inside_spread
    assert "inside the spread" in amu.verdict()
    near = goals["AMU (P+O+M dense serial) within 0.02 of joint memory"]
    assert near.measured == pytest.approx(-0.01)
    assert near.spread == pytest.approx(0.0)
    assert near.met
    assert not near.inside_spread
    assert goals["joint memory's step time >= 2x AMU's"].measured == pytest.approx(3.0)
