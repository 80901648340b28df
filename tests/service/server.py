"""A real `aia serve` process on a free port, for the HTTP tests (one per test module).

`free_port` and `stop_process` are the benchmark's (bench/serve.py), re-exported here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from bench.serve import free_port, stop_process

__all__ = ["ROOT", "Server", "free_port", "stop_process"]

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 90.0


class Server:
    """`python -m cli serve` with AIA_* settings; `url` once /health/ready is 200."""

    def __init__(self, model_dir: Path, env: Mapping[str, str] | None = None,
                 log: Path | None = None, python_flags: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("AIA_")}
        full_env.update({"AIA_MODEL_DIR": str(model_dir), "AIA_PORT": str(self.port),
                         "AIA_HOST": "127.0.0.1", "AIA_DRAIN_S": "5", **(env or {})})
        out = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen([sys.executable, *python_flags, "-m", "cli", "serve"],
                                        cwd=ROOT, env=full_env, stdout=out,
                                        stderr=subprocess.STDOUT)

    def wait_ready(self) -> Server:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"aia serve exited with {self.process.returncode}: "
                                   f"{self.log_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/health/ready", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"aia serve not ready in {READY_TIMEOUT_S} s: {self.log_text()[-3000:]}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log and self.log.exists() else ""

    def stop(self) -> int:
        return stop_process(self.process)
