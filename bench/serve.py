"""`aia bench serve`: latency and throughput of a real `aia serve` process under load.

Starts the service on a free loopback port (in-process store, or `--redis-url`), then for each
concurrency level drives POST /v1/detect (or session clips) from N concurrent httpx clients
with the sample clip and its boxes. Per level: client latency percentiles, requests and key
frames per second, the service's own /metrics deltas (stage times, batch sizes, queue wait)
and the overhead share: 1 - model graph time / request time. Writes JSON, markdown, a PNG.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.serve_report import level_line, markdown, write_results
from service.metrics import STAGES

if TYPE_CHECKING:  # a dev dependency: imported where the benchmark runs
    import httpx

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CLIP = ROOT / "docs" / "sample" / "clip.mp4"
SAMPLE_BOXES = ROOT / "docs" / "sample" / "boxes.json"
DEFAULT_OUT = Path("bench/results/serve")
LEVELS = (1, 4, 16)
# stages that are model graphs: the detector, graph 1 (features) and graph 2 (head); their
# per-request time includes the batcher's queue wait, which is model contention, not overhead
MODEL_STAGES = ("detect", "features", "head")
ROUTES = {"detect": "/v1/detect", "session": "/v1/sessions/{session_id}/clips"}
READY_TIMEOUT_S = 180.0

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `aia bench serve` (added to `aia bench`'s parser; names not taken there)."""
    group = parser.add_argument_group("serve")
    group.add_argument("--model", type=Path, default=None, metavar="DIR",
                       help="artifact directory (default: the settings default, "
                       "artifacts/aia-synth-tiny)")
    group.add_argument("--redis-url", default=None, metavar="URL",
                       help="serve with session memory in this Redis (default: in-process)")
    group.add_argument("--concurrency", type=int, nargs="+", default=list(LEVELS),
                       metavar="N", help="concurrent clients per level (1 4 16)")
    group.add_argument("--requests", type=int, default=None,
                       help="requests per level (default: max(64, 4 x clients))")
    group.add_argument("--seconds", type=float, default=None,
                       help="run each level this long instead of a request count")
    group.add_argument("--warmup", type=int, default=1,
                       help="untimed requests per client before each level")
    group.add_argument("--endpoint", choices=sorted(ROUTES), default="detect",
                       help="detect: whole clips; session: each client a session of clips")
    group.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE",
                       help="a service setting for the served process (e.g. max_batch=16 "
                       "sets AIA_MAX_BATCH); repeatable; default: the settings defaults")
    group.add_argument("--clip", type=Path, default=SAMPLE_CLIP, help="video to post")
    group.add_argument("--boxes", default=str(SAMPLE_BOXES),
                       help="its person boxes JSON ('' for none: the detector stage)")


# ---------------------------------------------------------------------- the server process

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 20.0) -> int:
    """SIGTERM (a graceful drain), SIGKILL past `timeout_s`; the exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def settings_env(pairs: Sequence[str]) -> dict[str, str]:
    """['max_batch=16'] -> {'AIA_MAX_BATCH': '16'}."""
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise SystemExit(f"aia bench serve: --setting {pair!r}: expected NAME=VALUE, e.g. "
                             "max_batch=16")
        env["AIA_" + name.strip().upper()] = value
    return env


class ServeProcess:
    """`python -m cli serve` on a free loopback port, its log in a file."""

    def __init__(self, args: argparse.Namespace, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        cmd = [sys.executable, "-m", "cli", "serve", "--host", "127.0.0.1",
               "--port", str(self.port)]
        if args.device is not None:  # else the server's settings choose (auto: a GPU if any)
            cmd += ["--device", args.device]
        if args.model is not None:
            cmd += ["--model", str(args.model)]
        if args.redis_url:
            cmd += ["--redis-url", args.redis_url]
        # the settings defaults plus --setting only: no AIA_* from the caller's shell
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIA_")}
        env.update(settings_env(args.setting))
        with open(log, "wb") as out:
            self.process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out,
                                            stderr=subprocess.STDOUT)

    async def wait_ready(self, client: httpx.AsyncClient) -> None:
        import httpx

        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"aia serve exited with {self.process.returncode}:\n"
                                   f"{self.log.read_text(errors='replace')[-3000:]}")
            try:
                if (await client.get(self.url + "/health/ready", timeout=2.0)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
        raise RuntimeError(f"aia serve not ready in {READY_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        stop_process(self.process, timeout_s=30)


# ---------------------------------------------------------------------- metrics

def parse_metrics(text: str) -> Samples:
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, frozenset(s.labels.items())): float(s.value)
            for family in text_string_to_metric_families(text) for s in family.samples}


def metric_sum(samples: Samples, name: str, **labels: str) -> float:
    """Sum of every sample called `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return metric_sum(after, name, **labels) - metric_sum(before, name, **labels)


def _mean(total: float, count: float) -> float | None:
    return total / count if count > 0 else None


def server_numbers(before: Samples, after: Samples, route: str, ok: int) -> dict[str, Any]:
    """The service's own view of a level, from /metrics deltas."""
    stages = {name: delta(before, after, "aia_stage_duration_seconds_sum", stage=name)
              for name in STAGES}
    http_s = delta(before, after, "aia_http_request_duration_seconds_sum", route=route,
                   method="POST")
    model_s = sum(stages[s] for s in MODEL_STAGES)
    graph_run = {g: delta(before, after, "aia_model_run_seconds_sum", graph=g)
                 for g in ("features", "head")}
    batch = {g: _mean(delta(before, after, "aia_batch_size_sum", graph=g),
                      delta(before, after, "aia_batch_size_count", graph=g))
             for g in ("features", "head")}
    return {
        "stage_s_per_request": {k: v / max(ok, 1) for k, v in stages.items()},
        "model_s_per_request": model_s / max(ok, 1),
        "server_s_per_request": http_s / max(ok, 1),
        "overhead_share": min(max(1.0 - model_s / http_s, 0.0), 1.0) if http_s > 0 else None,
        "graph_run_s": graph_run,
        # compute only: each batched call once (a batch shared by requests is not counted
        # per request), no queue wait; clean at 1 client, an underestimate of the wait above
        "graph_s_per_request": sum(graph_run.values()) / max(ok, 1),
        "mean_batch": batch,
        "queue_wait_mean_s": _mean(delta(before, after, "aia_queue_wait_seconds_sum"),
                                   delta(before, after, "aia_queue_wait_seconds_count")),
        "keyframes": delta(before, after, "aia_keyframes_total"),
    }


# ---------------------------------------------------------------------- load

@dataclass
class Budget:
    """Shared by a level's clients: a request count, or seconds from the first request."""

    requests: int | None
    seconds: float | None
    taken: int = 0
    end: float | None = None

    def take(self) -> bool:
        if self.seconds is not None:
            if self.end is None:
                self.end = time.perf_counter() + self.seconds
            return time.perf_counter() < self.end
        self.taken += 1
        return self.requests is None or self.taken <= self.requests


@dataclass
class Load:
    """What every request posts."""

    url: str
    endpoint: str
    video: bytes
    boxes: str | None
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    async def session(self, client: httpx.AsyncClient) -> str | None:
        if self.endpoint != "session":
            return None
        reply = await client.post(self.url + "/v1/sessions", json={})
        reply.raise_for_status()
        return str(reply.json()["id"])

    async def post(self, client: httpx.AsyncClient, session: str | None, index: int) -> int:
        data = {"boxes": self.boxes} if self.boxes else {}
        if session is None:
            url = self.url + "/v1/detect"
        else:
            url, data = f"{self.url}/v1/sessions/{session}/clips", {**data,
                                                                    "clip_index": str(index)}
        files = {"video": ("clip.mp4", self.video, "video/mp4")}
        reply = await client.post(url, files=files, data=data)
        return int(reply.status_code)

    async def client(self, http: httpx.AsyncClient, budget: Budget, warmup: int,
                     warmed: asyncio.Barrier, go: asyncio.Event) -> None:
        session = await self.session(http)
        index = 0
        for _ in range(warmup):
            await self.post(http, session, index)
            index += 1
        await warmed.wait()
        await go.wait()
        while budget.take():
            started = time.perf_counter()
            status = await self.post(http, session, index)
            index += 1
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status == 200:
                self.latencies.append(time.perf_counter() - started)
        if session is not None:  # a benchmark leaves no memory behind in a shared Redis
            await http.delete(f"{self.url}/v1/sessions/{session}")


def percentile(values: Sequence[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


async def run_level(load: Load, http: httpx.AsyncClient, clients: int, args: argparse.Namespace
                    ) -> dict[str, Any]:
    load.latencies, load.statuses = [], {}
    warmed, go = asyncio.Barrier(clients + 1), asyncio.Event()
    budget = Budget(None if args.seconds else args.requests or max(64, 4 * clients),
                    args.seconds)
    tasks = [asyncio.create_task(load.client(http, budget, args.warmup, warmed, go))
             for _ in range(clients)]
    await warmed.wait()  # every client warmed up; the snapshot, then they go
    before = parse_metrics((await http.get(load.url + "/metrics")).text)
    go.set()
    started = time.perf_counter()
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - started
    after = parse_metrics((await http.get(load.url + "/metrics")).text)
    ok = len(load.latencies)
    server = server_numbers(before, after, ROUTES[load.endpoint], ok)
    client_s = sum(load.latencies)
    model_s = server["model_s_per_request"] * ok
    return {
        "clients": clients, "requests": sum(load.statuses.values()), "ok": ok,
        "statuses": {str(k): v for k, v in sorted(load.statuses.items())},
        "wall_s": wall,
        "latency_s": {"p50": percentile(load.latencies, 50),
                      "p90": percentile(load.latencies, 90),
                      "p99": percentile(load.latencies, 99),
                      "mean": client_s / ok if ok else float("nan")},
        "requests_per_s": ok / wall,
        "keyframes_per_s": server["keyframes"] / wall,
        "overhead_share_client": (min(max(1.0 - model_s / client_s, 0.0), 1.0)
                                  if client_s > 0 else None),
        "model_busy_share": sum(server["graph_run_s"].values()) / wall,
        **server,
    }


async def bench(args: argparse.Namespace, log: Path) -> dict[str, Any]:
    import httpx

    load_before = os.getloadavg()[0]
    server = ServeProcess(args, log)
    boxes = Path(args.boxes).read_text().strip() if args.boxes else None
    load = Load(server.url, args.endpoint, args.clip.read_bytes(), boxes)
    # one connection per client and no client-side timeout: a slow answer is a measurement
    limits = httpx.Limits(max_connections=max(args.concurrency) + 2)
    try:
        async with httpx.AsyncClient(timeout=None, limits=limits) as http:
            await server.wait_ready(http)
            served = (await http.get(server.url + "/v1/models")).json()["models"][0]
            model = {k: served[k] for k in ("name", "version", "runtime", "device", "dtype")}
            levels = []
            for clients in args.concurrency:
                level = await run_level(load, http, clients, args)
                print(level_line(level), flush=True)
                levels.append(level)
    finally:
        server.stop()
    clip = args.clip.resolve()
    return {"command": command_line(args),
            "endpoint": args.endpoint, "store": "redis" if args.redis_url else "in-process",
            "device": model.get("device", args.device), "cpus": os.cpu_count(),
            "settings": settings_env(args.setting),
            # the machine may be shared: its 1-minute load says how much the numbers mean
            "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "clip": str(clip.relative_to(ROOT) if clip.is_relative_to(ROOT) else clip),
            "boxes": bool(boxes), "model": model, "levels": levels}


# ---------------------------------------------------------------------- output

def command_line(args: argparse.Namespace) -> str:
    """The command that repeats this run (every flag that shapes it, defaults spelled out)."""
    words = ["aia", "bench", "serve", "--concurrency", *map(str, args.concurrency)]
    words += ["--seconds", str(args.seconds)] if args.seconds else [
        "--requests", str(args.requests)] if args.requests else []
    words += ["--warmup", str(args.warmup), "--endpoint", args.endpoint]
    optional = {"--device": args.device, "--model": args.model,
                "--redis-url": args.redis_url, "--out": args.out}
    words += [w for flag, value in optional.items() if value for w in (flag, str(value))]
    words += [w for pair in args.setting for w in ("--setting", pair)]
    if args.clip != SAMPLE_CLIP or args.boxes != str(SAMPLE_BOXES):
        words += ["--clip", str(args.clip), "--boxes", args.boxes]
    return shlex.join(words)


def run(args: argparse.Namespace) -> int:
    if not args.clip.is_file():
        print(f"aia bench serve: no video at {args.clip} (--clip FILE)", file=sys.stderr)
        return 2
    out = args.out or DEFAULT_OUT
    with tempfile.TemporaryDirectory(prefix="aia-bench-") as tmp:
        log = Path(tmp) / "serve.log"
        try:
            result = asyncio.run(bench(args, log))
        except RuntimeError as err:
            print(f"aia bench serve: {err}", file=sys.stderr)
            return 1
    write_results(result, out)
    print(markdown(result))
    print(f"wrote {out.with_suffix('.json')}, .md and .png")
    return 0
