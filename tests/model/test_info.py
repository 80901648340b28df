from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cli.main import main
from model.complexity import mac_counts
from model.config import preset


def test_info_json_reports_parts(capsys) -> None:
    assert main(["info", "--preset", "tiny", "--structure", "dense", "--persons", "0", "3",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    params = report["params"]
    assert params["total"] == params["backbone"] + params["ia"] + params["classifier"]
    assert report["structure"] == "dense"
    assert [m["persons"] for m in report["macs"]] == [0, 3]
    assert all(m["features"] > 0 and m["head"] > 0 for m in report["macs"])


def test_info_table_via_console_entry() -> None:
    out = subprocess.run([sys.executable, "-m", "cli", "info", "--preset", "tiny"],
                         capture_output=True, text=True, check=True).stdout
    assert "backbone" in out
    assert "head (ref)" in out


def test_info_rejects_unknown_preset() -> None:
    proc = subprocess.run([sys.executable, "-m", "cli", "info", "--preset", "r18"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr


@pytest.mark.slow
def test_r50_head_cost_no_longer_scales_with_persons_times_slots() -> None:
    cfg = preset("r50_4x16")
    one, many = mac_counts(cfg, 1), mac_counts(cfg, 21)
    per_person = (many.head - one.head) / 20
    # the 305 memory slots are reduced (2304->1024) and projected once per clip: one more
    # person costs its own projections and attention, not another pass over the memory
    memory_projection = 305 * (2304 * 1024 + 2 * 2 * 1024 * 1024)
    assert per_person < 0.1 * memory_projection
    ref_per_person = (many.head_reference - one.head_reference) / 20
    assert ref_per_person > memory_projection
    assert many.head_reference / many.head > 10
