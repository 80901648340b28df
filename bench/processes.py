"""Processes the benchmarks (and the HTTP tests) start: a served `aia serve` on a free port,
waited for until ready, and a private redis-server that can be stopped and started again."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from bench.serve import READY_TIMEOUT_S, ROOT, free_port


def start_service(log: Path, env: Mapping[str, str] = {},
                  model: Path | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m cli serve` on a free loopback port with the settings defaults plus `env`
    (no AIA_* from the caller's shell), its output in `log`; returns once /health/ready is
    200 (RuntimeError with the log's tail if it exits or is not ready in time)."""
    import httpx

    port = free_port()
    full = {k: v for k, v in os.environ.items() if not k.startswith("AIA_")} | dict(env)
    cmd = [sys.executable, "-m", "cli", "serve", "--port", str(port)]
    cmd += ["--model", str(model)] if model is not None else []
    with open(log, "wb") as out:
        process = subprocess.Popen(cmd, cwd=ROOT, env=full, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health/ready", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"aia serve did not get ready: {log.read_text()[-2000:]}")


class PrivateRedis:
    """redis-server on a free port, every write appended to disk, so a restart keeps it."""

    def __init__(self, folder: Path) -> None:
        self.port, self.folder = free_port(), folder
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.folder), "--save", "", "--appendonly", "yes", "--appendfsync", "always"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ping = subprocess.run(["redis-cli", "-p", str(self.port), "ping"],
                                  capture_output=True, text=True, check=False)
            if ping.stdout.strip() == "PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None
