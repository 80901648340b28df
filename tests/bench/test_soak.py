"""bench.soak's verdicts from records: lost memory, late commits, 5xx, bad inputs."""

from __future__ import annotations

import argparse

from bench.soak import (
    Record,
    SessionLog,
    Soak,
    markdown,
    restart_times,
    rss_windows,
    summarise,
)


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


def test_restarts_are_evenly_spaced() -> None:
    assert restart_times(20.0, 3) == [300.0, 600.0, 900.0]
    assert restart_times(10.0, 1) == [300.0]
    assert restart_times(10.0, 0) == []


def test_rss_windows_split_at_redis_stops_and_tell_drift_from_noise() -> None:
    noise = [0.0, 3.0, -3.0, 1.0, -1.0]
    # 60-300 s flat around 500 MB; 300-600 s climbing 10 MB a minute
    samples = [{"t": float(t), "rss_mb": 500.0 + noise[t % 5]} for t in range(0, 300)]
    samples += [{"t": float(t), "rss_mb": 600.0 + (t - 300) / 6 + noise[t % 5]}
                for t in range(300, 600)]
    events = [{"t": 300.0, "event": "redis stopped"}, {"t": 303.0, "event": "redis started"}]
    first, second = rss_windows(samples, events)
    assert (first["from_s"], first["to_s"]) == (60.0, 299.0)
    assert abs(first["slope_mb_per_minute"]) < 0.5
    assert first["flat"]
    assert abs(second["slope_mb_per_minute"] - 10.0) < 0.5
    assert not second["flat"]
    assert abs(second["drift_mb"] - 49.8) < 1.0


def test_a_stored_clip_retried_while_the_store_is_down_is_not_a_late_commit() -> None:
    import asyncio

    import httpx

    commits = iter(["stored", "not_stored", "not_stored"])

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"session": {"commit": next(commits)}})

    soak = Soak("http://x", b"v", "[]", end=0.0, started=0.0)
    log = SessionLog("s")

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
            await soak.clip(http, log, 0)  # stored
            await soak.clip(http, log, 0)  # its retry during an outage: computed, not stored
            await soak.clip(http, log, 1)  # a new clip not stored: must never appear later

    asyncio.run(main())
    assert log.stored == {0}
    assert log.degraded == {1}
    assert log.stored_then_not_stored == 1
    samples = [{"t": float(t), "rss_mb": 100.0, "live_s": 0.01} for t in range(120)]
    soak.sessions = [log]
    result = summarise(argparse.Namespace(clients=1, minutes=2.0), soak, samples, [],
                       {"s": {0}})
    assert result["late_commits"] == 0
    assert result["retries_of_stored_answered_not_stored"] == 1
    assert "not stored (store down) 1" in markdown(result)
