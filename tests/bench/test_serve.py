"""`aia bench serve` end to end: a real `aia serve` process under a few concurrent requests."""

from __future__ import annotations

import json
import math
from pathlib import Path

from cli.main import main


def test_bench_serve_writes_sane_numbers(tmp_path: Path) -> None:
    out = tmp_path / "serve"
    # the shipped artifact (the settings default) and the sample clip with its boxes
    code = main(["bench", "serve", "--concurrency", "2", "--requests", "4", "--warmup", "1",
                 "--out", str(out)])
    assert code == 0
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["store"] == "in-process"
    assert result["model"]["runtime"] == "onnx"
    (level,) = result["levels"]
    assert level["clients"] == 2
    assert level["requests"] == level["ok"] == 4
    assert level["statuses"] == {"200": 4}
    latency = level["latency_s"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] < 60
    assert level["requests_per_s"] > 0
    # the sample clip is 5 s: one key frame a second
    assert math.isclose(level["keyframes_per_s"], level["requests_per_s"] * 5)
    assert 0 <= level["overhead_share"] <= 1
    assert 0 <= level["overhead_share_client"] <= 1
    assert 0 < level["graph_s_per_request"] <= level["model_s_per_request"]
    assert level["model_s_per_request"] < level["server_s_per_request"] <= latency["mean"]
    assert level["stage_s_per_request"]["decode"] > 0
    assert level["mean_batch"]["features"] >= 1
    assert not math.isnan(level["queue_wait_mean_s"])
    table = out.with_suffix(".md").read_text()
    assert "| 2 | 4 (4) |" in table
    assert "Command: `aia bench serve --concurrency 2" in table
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
