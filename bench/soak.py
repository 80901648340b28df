"""`python -m bench.soak`: a real `aia serve` on a private Redis under N clients for M
minutes, mixing whole-video detects (boxes given, or the detector), session clips (with
retries of the same index) and bad inputs; Redis is restarted `--redis-restarts` times,
evenly spaced (once, halfway, by default).

What it checks, and writes (JSON, markdown, PNG) to --out:
- statuses per kind of request, and that no answer is a 5xx;
- session memory: every clip answered with memory stored is in the session's `seen`, no clip
  answered `degraded` is (a late commit), and a retry of a stored clip returns the first
  answer byte for byte;
- RSS of the server over time: the slope after the first minute, and per window between
  Redis restarts (slope, residual sd, and whether its drift across the window stays inside
  that sd: flat); throughput per minute; the latency of /health/live (the event loop
  answering while requests run).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.long_video_memory import rss_mb, slope
from bench.processes import PrivateRedis, start_service
from bench.serve import stop_process

if TYPE_CHECKING:
    import httpx

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "docs" / "sample" / "clip.mp4"
BOXES = ROOT / "docs" / "sample" / "boxes.json"
DEFAULT_OUT = Path("bench/results/soak")
MIX = (("detect", 0.45), ("detect-detector", 0.10), ("session", 0.30), ("bad", 0.15))


def bad_requests(url: str, video: bytes, session: str) -> list[tuple[str, dict[str, Any]]]:
    """(name, httpx.post arguments) of inputs a hostile client sends; each must be a 4xx."""
    nested = "[" * 2000 + "]" * 2000
    many = json.dumps([{"timestamp": t / 100, "boxes": [[0.1, 0.1, 0.5, 0.9]]}
                       for t in range(500)])
    boundary = "soakboundary"
    part = (f'--{boundary}\r\nContent-Disposition: form-data; name="video"; '
            'filename="v.mp4"\r\nContent-Type: video/mp4\r\n\r\n').encode()
    half = len(video) // 2
    two_parts = (part + video[:half] + b"\r\n" + part + video[half:] + b"\r\n"
                 + f"--{boundary}--\r\n".encode())
    cut = part + video
    multipart = {"content-type": f"multipart/form-data; boundary={boundary}"}
    detect, clips = f"{url}/v1/detect", f"{url}/v1/sessions/{session}/clips"
    return [
        ("not-a-video", {"url": detect, "content": b"hello" * 100,
                         "headers": {"content-type": "video/mp4"}}),
        ("image", {"url": detect, "content": b"\x89PNG\r\n\x1a\n" + b"\0" * 64,
                   "headers": {"content-type": "image/png"}}),
        ("empty", {"url": detect, "content": b"", "headers": {"content-type": "video/mp4"}}),
        ("nested-boxes", {"url": detect, "files": {"video": ("v.mp4", video, "video/mp4")},
                          "data": {"boxes": nested}}),
        ("too-many-keyframes", {"url": detect, "data": {"boxes": many},
                                "files": {"video": ("v.mp4", video, "video/mp4")}}),
        ("two-video-parts", {"url": detect, "content": two_parts, "headers": multipart}),
        ("cut-multipart", {"url": detect, "content": cut, "headers": multipart}),
        ("clip-index-far", {"url": clips, "params": {"clip_index": "10000000"},
                            "files": {"video": ("v.mp4", video, "video/mp4")},
                            "data": {"boxes": "[]"}}),
        ("unknown-session", {"url": f"{url}/v1/sessions/no-such-session/clips",
                             "params": {"clip_index": "0"},
                             "files": {"video": ("v.mp4", video, "video/mp4")}}),
    ]


@dataclass
class Record:
    t: float  # seconds from the start
    kind: str
    status: int
    seconds: float


@dataclass
class SessionLog:
    id: str
    answers: dict[int, bytes] = field(default_factory=dict)  # first 200 body per index
    stored: set[int] = field(default_factory=set)  # answered: commit stored
    degraded: set[int] = field(default_factory=set)  # answered: not_stored (never will be)
    in_doubt: set[int] = field(default_factory=set)  # answered: unknown (retried until known)
    in_doubt_answers: int = 0
    duplicate_mismatches: int = 0
    # a retry of a stored clip while the store was down: computed again, answered not stored
    # (true of that attempt: the store could not say it was a duplicate); the first stays
    stored_then_not_stored: int = 0
    history: list[tuple[int, str]] = field(default_factory=list)  # (index, answer) in order


@dataclass
class Soak:
    url: str
    video: bytes
    boxes: str
    end: float
    started: float
    records: list[Record] = field(default_factory=list)
    sessions: list[SessionLog] = field(default_factory=list)

    def note(self, kind: str, status: int, began: float) -> None:
        now = time.monotonic()
        self.records.append(Record(now - self.started, kind, status, now - began))

    async def client(self, http: httpx.AsyncClient, seed: int) -> None:
        rng = random.Random(seed)
        log = SessionLog((await http.post(self.url + "/v1/sessions", json={})).json()["id"])
        self.sessions.append(log)
        index = 0
        files = {"video": ("clip.mp4", self.video, "video/mp4")}
        while time.monotonic() < self.end:
            kind = rng.choices([k for k, _ in MIX], [w for _, w in MIX])[0]
            began = time.monotonic()
            if kind == "detect":
                reply = await http.post(self.url + "/v1/detect", files=files,
                                        data={"boxes": self.boxes})
            elif kind == "detect-detector":
                reply = await http.post(self.url + "/v1/detect", files=files)
            elif kind == "session":
                # a client retries its last clip now and then, and always when the answer
                # says the commit's outcome is unknown
                again = index > 0 and (rng.random() < 0.15 or (index - 1) in log.in_doubt)
                reply = await self.clip(http, log, index - 1 if again else index)
                index += 0 if again else 1
                kind = "session-retry" if again else kind
            else:
                name, arguments = rng.choice(bad_requests(self.url, self.video, log.id))
                reply = await http.post(**arguments)
                kind = f"bad:{name}"
                if reply.status_code == 200 and reply.json().get("memory") == "degraded":
                    kind += ":store-down"  # no store to say the session is unknown
            self.note(kind, reply.status_code, began)
            wait = reply.headers.get("retry-after")
            if reply.status_code in (409, 429, 503) and wait is not None:
                await asyncio.sleep(min(float(wait), 5.0))

    async def clip(self, http: httpx.AsyncClient, log: SessionLog, index: int
                   ) -> httpx.Response:
        reply = await http.post(f"{self.url}/v1/sessions/{log.id}/clips",
                                params={"clip_index": str(index)}, data={"boxes": self.boxes},
                                files={"video": ("clip.mp4", self.video, "video/mp4")})
        if reply.status_code != 200:
            log.history.append((index, str(reply.status_code)))
            return reply
        if reply.headers.get("x-clip-status") == "duplicate":
            log.history.append((index, "duplicate"))
            if index in log.stored and reply.content != log.answers[index]:
                log.duplicate_mismatches += 1
            if index in log.in_doubt:  # the unknown commit had landed: this is its answer
                log.in_doubt.discard(index)
                log.stored.add(index)
                log.answers[index] = reply.content
            return reply
        commit = reply.json()["session"]["commit"]
        log.history.append((index, commit))
        if commit == "stored":
            log.stored.add(index)
            log.degraded.discard(index)  # a retry that was stored supersedes the others
            log.in_doubt.discard(index)
            log.answers[index] = reply.content
        elif commit == "unknown":
            log.in_doubt.add(index)
            log.in_doubt_answers += 1
        elif index in log.stored:
            log.stored_then_not_stored += 1
        else:
            log.degraded.add(index)
        return reply


async def sample(url: str, pid: int, started: float, end: float,
                 out: list[dict[str, float]]) -> None:
    import httpx

    async with httpx.AsyncClient(timeout=30) as http:
        while time.monotonic() < end:
            began = time.monotonic()
            try:
                await http.get(url + "/health/live")
                live = time.monotonic() - began
            except httpx.HTTPError:
                live = float("nan")
            out.append({"t": round(began - started, 2), "rss_mb": round(rss_mb(pid), 1),
                        "live_s": round(live, 4)})
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - began)))


def restart_times(minutes: float, restarts: int) -> list[float]:
    """Seconds from the start at which Redis stops: `restarts` of them, evenly spaced."""
    return [minutes * 60 * (i + 1) / (restarts + 1) for i in range(restarts)]


async def restart_redis(redis: PrivateRedis, at_s: list[float], down_s: float,
                        events: list[dict[str, Any]], started: float) -> None:
    for at in at_s:
        await asyncio.sleep(max(0.0, at - (time.monotonic() - started)))
        events.append({"t": round(time.monotonic() - started, 2), "event": "redis stopped"})
        await asyncio.to_thread(redis.stop)
        await asyncio.sleep(down_s)
        await asyncio.to_thread(redis.start)
        events.append({"t": round(time.monotonic() - started, 2), "event": "redis started"})


def rss_windows(samples: list[dict[str, float]], events: list[dict[str, Any]],
                skip_s: float = 60.0) -> list[dict[str, float | bool]]:
    """RSS per window between Redis stops (after the first `skip_s`, the warm-up): the
    least-squares slope, the residual sd, and flat = the fitted drift across the window is
    within that sd (a slope inside the noise)."""
    import numpy as np

    cuts = [skip_s, *(e["t"] for e in events if e["event"] == "redis stopped"), np.inf]
    windows = []
    for begin, end in itertools.pairwise(cuts):
        inside = [s for s in samples if begin <= s["t"] < end]
        if len(inside) < 10:
            continue
        t = np.array([s["t"] for s in inside]) / 60  # minutes
        rss = np.array([s["rss_mb"] for s in inside])
        fit = np.polyfit(t, rss, 1)
        sd = float(np.std(rss - np.polyval(fit, t)))
        drift = float(fit[0] * (t[-1] - t[0]))
        windows.append({"from_s": float(inside[0]["t"]), "to_s": float(inside[-1]["t"]),
                        "mean_mb": round(float(rss.mean()), 1),
                        "slope_mb_per_minute": round(float(fit[0]), 2),
                        "residual_sd_mb": round(sd, 2), "drift_mb": round(drift, 1),
                        "flat": abs(drift) <= sd})
    return windows


async def drive(args: argparse.Namespace, redis: PrivateRedis, server: subprocess.Popen[bytes],
                url: str) -> dict[str, Any]:
    import httpx

    boxes = BOXES.read_text()
    started = time.monotonic()
    soak = Soak(url, CLIP.read_bytes(), boxes, started + args.minutes * 60, started)
    samples: list[dict[str, float]] = []
    events: list[dict[str, Any]] = []
    limits = httpx.Limits(max_connections=args.clients + 4)
    async with httpx.AsyncClient(timeout=300, limits=limits) as http:
        await asyncio.gather(
            sample(url, server.pid, started, soak.end, samples),
            restart_redis(redis, restart_times(args.minutes, args.redis_restarts),
                          args.redis_down_s, events, started),
            *(soak.client(http, seed) for seed in range(args.clients)))
        seen = {}
        for log in soak.sessions:
            seen[log.id] = set((await http.get(f"{url}/v1/sessions/{log.id}")).json()["seen"])
    return summarise(args, soak, samples, events, seen)


def summarise(args: argparse.Namespace, soak: Soak, samples: list[dict[str, float]],
              events: list[dict[str, Any]], seen: dict[str, set[int]]) -> dict[str, Any]:
    import numpy as np

    kinds: dict[str, dict[str, Any]] = {}
    for record in soak.records:
        entry = kinds.setdefault(record.kind, {"statuses": {}, "ok_seconds": []})
        entry["statuses"][str(record.status)] = entry["statuses"].get(str(record.status), 0) + 1
        if record.status == 200:
            entry["ok_seconds"].append(record.seconds)
    for entry in kinds.values():
        ok = entry.pop("ok_seconds")
        entry["p50_s"] = round(float(np.percentile(ok, 50)), 3) if ok else None
        entry["p99_s"] = round(float(np.percentile(ok, 99)), 3) if ok else None
    lost = sum(len(log.stored - seen[log.id]) for log in soak.sessions)
    late = sum(len(log.degraded & seen[log.id]) for log in soak.sessions)
    unresolved = sum(len(log.in_doubt) for log in soak.sessions)
    minute = [sum(1 for r in soak.records if m * 60 <= r.t < (m + 1) * 60)
              for m in range(int(args.minutes))]
    steady = [s["rss_mb"] for s in samples if s["t"] >= 60]
    live = [s["live_s"] for s in samples if s["live_s"] == s["live_s"]]
    return {
        "clients": args.clients, "minutes": args.minutes, "events": events,
        "server_env": getattr(args, "server_env", []),
        "requests": len(soak.records),
        "server_errors": sum(1 for r in soak.records if r.status >= 500),
        "bad_inputs_not_4xx": sum(1 for r in soak.records if r.kind.startswith("bad:")
                                  and not r.kind.endswith(":store-down")
                                  and not 400 <= r.status < 500),
        "sessions": len(soak.sessions),
        "session_clips_stored": sum(len(log.stored) for log in soak.sessions),
        "session_clips_degraded": sum(len(log.degraded) for log in soak.sessions),
        "lost_session_memory": lost, "late_commits": late,
        # what each client was told about a clip found lost or late, in order
        "late_or_lost_histories": [
            {"session": log.id, "index": i, "answers": [a for j, a in log.history if j == i]}
            for log in soak.sessions
            for i in sorted((log.degraded & seen[log.id]) | (log.stored - seen[log.id]))],
        "commits_unknown_answers": sum(log.in_doubt_answers for log in soak.sessions),
        "commits_unknown_unresolved": unresolved,
        "retries_of_stored_answered_not_stored": sum(log.stored_then_not_stored
                                                     for log in soak.sessions),
        "duplicate_mismatches": sum(log.duplicate_mismatches for log in soak.sessions),
        "requests_per_minute": minute,
        "rss_mb": {"first": samples[0]["rss_mb"], "last": samples[-1]["rss_mb"],
                   "max": max(s["rss_mb"] for s in samples),
                   "slope_mb_per_minute_after_1min": round(slope(steady) * 60, 2)
                   if len(steady) > 2 else None,
                   "noise_mb": round(float(np.std(steady)), 2) if steady else None,
                   "windows": rss_windows(samples, events)},
        "health_live_s": {"p50": round(float(np.percentile(live, 50)), 4),
                          "p99": round(float(np.percentile(live, 99)), 4),
                          "max": round(max(live), 4)},
        "kinds": dict(sorted(kinds.items())), "samples": samples,
        "records": [[round(r.t, 2), r.kind, r.status, round(r.seconds, 3)]
                    for r in soak.records],
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [f"# Soak: {result['clients']} clients, {result['minutes']:g} minutes",
             "", f"- requests: {result['requests']}, 5xx: {result['server_errors']}, bad "
             f"inputs answered other than 4xx: {result['bad_inputs_not_4xx']}",
             f"- sessions: {result['sessions']}; clips stored {result['session_clips_stored']}"
             f", degraded {result['session_clips_degraded']}; lost memory "
             f"{result['lost_session_memory']}, late commits {result['late_commits']}, "
             f"duplicates not byte-equal {result['duplicate_mismatches']}; commits answered "
             f"unknown {result['commits_unknown_answers']} (unresolved after retries "
             f"{result['commits_unknown_unresolved']}); retries of a stored clip answered "
             f"not stored (store down) {result['retries_of_stored_answered_not_stored']}",
             "- RSS (MB): " + ", ".join(f"{k} {v}" for k, v in result["rss_mb"].items()
                                         if k != "windows"),
             *(f"  - {w['from_s']:.0f}-{w['to_s']:.0f} s: mean {w['mean_mb']} MB, slope "
               f"{w['slope_mb_per_minute']} MB/min, drift {w['drift_mb']} MB vs residual sd "
               f"{w['residual_sd_mb']} MB: {'flat' if w['flat'] else 'NOT flat'}"
               for w in result["rss_mb"]["windows"]),
             f"- /health/live (s): "
             f"{result['health_live_s']}",
             f"- requests per minute: {result['requests_per_minute']}",
             f"- events: {result['events']}", "",
             "| kind | statuses | p50 s | p99 s |", "|---|---|---|---|"]
    for kind, entry in result["kinds"].items():
        lines.append(f"| {kind} | {entry['statuses']} | {entry['p50_s']} | {entry['p99_s']} |")
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples, records = result["samples"], result["records"]
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    axes[0].plot([s["t"] for s in samples], [s["rss_mb"] for s in samples])
    axes[0].set_ylabel("server RSS (MB)")
    edges = list(range(0, int(result["minutes"] * 60) + 10, 10))
    counts = [sum(1 for r in records if a <= r[0] < b) / 10 for a, b in itertools.pairwise(edges)]
    axes[1].plot(edges[1:], counts, label="answers / s (10 s bins)")
    errors = [sum(1 for r in records if a <= r[0] < b and r[2] >= 500)
              for a, b in itertools.pairwise(edges)]
    axes[1].plot(edges[1:], errors, label="5xx", color="red")
    axes[1].legend()
    axes[2].plot([s["t"] for s in samples], [s["live_s"] for s in samples])
    axes[2].set_ylabel("/health/live (s)")
    axes[2].set_xlabel("seconds")
    for event in result["events"]:
        for ax in axes:
            ax.axvline(event["t"], color="grey", linestyle="--", linewidth=0.8)
    restarts = sum(1 for e in result["events"] if e["event"] == "redis stopped")
    fig.suptitle(f"aia serve soak: {result['clients']} clients, {result['minutes']:g} min, "
                 f"Redis restarted {restarts}x")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--redis-down-s", type=float, default=3.0)
    parser.add_argument("--redis-restarts", type=int, default=1)
    parser.add_argument("--server-env", action="append", default=[], metavar="AIA_X=VALUE",
                        help="a setting for the server (repeatable), e.g. AIA_MALLOC_TRIM_S=0")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="aia-soak-"))
    redis = PrivateRedis(folder)
    redis.start()
    try:
        env = dict(item.split("=", 1) for item in args.server_env)
        server, url = start_service(folder / "serve.log", {"AIA_REDIS_URL": redis.url, **env},
                                    args.model)
        try:
            result = asyncio.run(drive(args, redis, server, url))
        finally:
            result_code = stop_process(server)
    finally:
        redis.stop()
    result["exit_status"] = result_code
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(result) + "\n")
    (args.out / "soak.md").write_text(markdown(result))
    plot(result, args.out / "soak.png")
    print(markdown(result))
    return 0 if result["server_errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
