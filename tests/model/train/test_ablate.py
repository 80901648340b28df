from __future__ import annotations

import json
from pathlib import Path

from model.cli import main
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
    rows = json.loads((out / "ablation.json").read_text())
    assert [r["variant"] for r in rows] == ["baseline (no IA)", "P+O+M dense serial"]
    assert all(r["step"] == 2 and 0 <= r["map"] <= 1 for r in rows)
    assert rows[0]["params"] < rows[1]["params"]
    table = (out / "ablation.md").read_text()
    assert "| P+O+M dense serial | POMPOM | dense | amu |" in table
    assert (out / "ablation.png").stat().st_size > 0
    # a finished variant is read back, not retrained
    mtime = (out / "baseline-no-ia" / "metrics.jsonl").stat().st_mtime
    assert main(args) == 0
    assert (out / "baseline-no-ia" / "metrics.jsonl").stat().st_mtime == mtime
