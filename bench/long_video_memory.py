"""Memory of a real `aia serve` answering long videos: peak RSS during each request, RSS
after it, and the slope of the latter across repeated requests (a leak shows as a slope).

    python -m bench.long_video_memory [--seconds 590] [--size 32] [--requests 6]

The video is made here (PyAV, a moving pattern, 25 fps, small: the 590 s, 32x32 upload of
the abuse test is under every limit), posted with a few person boxes (`--boxes-every` s, so
the request stays under the key-frame bound) or without (the detector, one key frame a
second, needs `--seconds` under AIA_MAX_KEYFRAMES). Writes JSON (and prints it).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path("bench/results/memory/long-video.json")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def write_video(path: Path, seconds: float, size: int, fps: int = 25) -> Path:
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        y, x = np.mgrid[0:size, 0:size]
        for i in range(round(seconds * fps)):
            level = ((x + y + i) % size * (255 // max(size - 1, 1))).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(np.stack([level] * 3, -1), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


class Peak:
    """Samples a process's RSS every `every_s` in a thread; `stop()` returns the peak (MB)."""

    def __init__(self, pid: int, every_s: float = 0.02) -> None:
        self.pid, self.every_s, self.peak = pid, every_s, rss_mb(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.peak = max(self.peak, rss_mb(self.pid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def slope(values: list[float]) -> float:
    """Least-squares MB per request."""
    n = len(values)
    if n < 2:
        return 0.0
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    return num / sum((i - mean_x) ** 2 for i in range(n))


def run(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    from bench.processes import start_service
    from bench.serve import stop_process

    folder = Path(tempfile.mkdtemp(prefix="aia-long-"))
    video = write_video(folder / "long.mp4", args.seconds, args.size)
    server, url = start_service(folder / "serve.log", {}, args.model)
    try:
        data: dict[str, str] = {}
        if args.boxes_every > 0:
            times = [float(t) for t in range(0, int(args.seconds), int(args.boxes_every))]
            data["boxes"] = json.dumps([{"timestamp": t, "boxes": [[0.2, 0.1, 0.6, 0.9]]}
                                        for t in times])
        body = video.read_bytes()
        baseline = rss_mb(server.pid)
        requests = []
        for _ in range(args.requests):
            peak = Peak(server.pid)
            started = time.monotonic()
            answer = httpx.post(url + "/v1/detect", data=data, timeout=600,
                                files={"video": ("long.mp4", body, "video/mp4")})
            seconds = time.monotonic() - started
            top = peak.stop()
            time.sleep(args.settle_s)
            requests.append({"status": answer.status_code, "seconds": round(seconds, 2),
                             "peak_mb": round(top, 1), "after_mb": round(rss_mb(server.pid), 1)})
            print(json.dumps(requests[-1]), flush=True)
        after = [r["after_mb"] for r in requests]
        return {"video": {"seconds": args.seconds, "size": args.size, "bytes": len(body)},
                "boxes_every_s": args.boxes_every, "baseline_mb": round(baseline, 1),
                "requests": requests,
                "peak_over_baseline_mb": round(max(r["peak_mb"] for r in requests) - baseline,
                                               1),
                "after_over_baseline_mb": round(after[-1] - baseline, 1),
                "slope_mb_per_request": round(slope(after), 2),
                # the first request grows the runtime's arenas once (batches larger than the
                # warm-up's); a leak keeps rising after it
                "slope_after_first_mb_per_request": round(slope(after[1:]), 2)}
    finally:
        stop_process(server)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--seconds", type=float, default=590.0)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--requests", type=int, default=6)
    parser.add_argument("--boxes-every", type=float, default=60.0,
                        help="seconds between boxed key frames (0: no boxes, the detector)")
    parser.add_argument("--settle-s", type=float, default=1.0)
    parser.add_argument("--label", default="", help="a name for this run in the JSON")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    result = {"label": args.label, **run(args)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "requests"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
