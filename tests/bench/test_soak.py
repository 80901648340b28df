"""bench.soak's verdicts from records: lost memory, late commits, 5xx, bad inputs."""

from __future__ import annotations

import argparse

from bench.soak import Record, SessionLog, Soak, markdown, summarise


def test_summary_counts_what_went_wrong() -> None:
    soak = Soak("http://x", b"", "[]", end=0.0, started=0.0)
    soak.records = [Record(1.0, "detect", 200, 0.5), Record(2.0, "detect", 503, 0.1),
                    Record(61.0, "bad:nested-boxes", 422, 0.01),
                    Record(62.0, "bad:image", 500, 0.01), Record(70.0, "session", 200, 0.4)]
    good = SessionLog("a", stored={0, 1, 2}, degraded=set())
    bad = SessionLog("b", stored={0, 1}, degraded={2}, duplicate_mismatches=1)
    soak.sessions = [good, bad]
    seen = {"a": {0, 1, 2}, "b": {0, 2}}  # b lost clip 1 and clip 2 landed although degraded
    samples = [{"t": float(t), "rss_mb": 100.0 + (t >= 60) * 0.5, "live_s": 0.01}
               for t in range(120)]
    args = argparse.Namespace(clients=2, minutes=2.0)
    result = summarise(args, soak, samples, [], seen)
    assert result["server_errors"] == 2  # a 503 is a 5xx too
    assert result["bad_inputs_not_4xx"] == 1
    assert (result["lost_session_memory"], result["late_commits"]) == (1, 1)
    assert result["duplicate_mismatches"] == 1
    assert result["requests_per_minute"] == [2, 3]
    assert result["rss_mb"]["slope_mb_per_minute_after_1min"] == 0.0
    assert result["kinds"]["detect"]["statuses"] == {"200": 1, "503": 1}
    assert "lost memory 1" in markdown(result)
