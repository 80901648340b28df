"""Loader throughput: key frames per second through the training DataLoader (tiny preset input
spec, training augmentation), without and with the window cache, 0 and 2 workers; and the two
decoding strategies on their own (seek per window vs one pass per whole video, which is how
`fill_cache` warms the cache), and one-thread costs per stage (decode, cache read, augment,
collate), the least noisy numbers on a shared machine.

By default it writes a small AVA-format dataset of H.264 videos to a temporary folder
(`model.data.toy`); `--data DIR` measures an existing dataset directory instead.
Prints a table, writes JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from model.config import preset
from model.data.batching import collate, make_loader
from model.data.cache import WindowCache
from model.data.dataset import AvaDataset, train_options
from model.data.offline import fill_cache
from model.data.toy import ToyVideo, write_toy_dataset
from model.data.video import iter_windows, read_window


def toy_dataset(root: Path, videos: int, seconds: int, gop: int) -> Path:
    specs = [ToyVideo(f"video{i:02d}", seconds, fps=30.0 if i % 4 == 3 else 25.0, width=480,
                      height=270, persons=2, crf=23, gop=gop) for i in range(videos)]
    return write_toy_dataset(root, specs)


def epoch_rates(ds: AvaDataset, workers: int, batch_size: int, epochs: int) -> list[dict]:
    """Time each epoch of one loader (persistent workers: startup counts in epoch 0 only)."""
    loader = make_loader(ds, batch_size=batch_size, workers=workers, shuffle=True,
                         persistent_workers=True)
    out = []
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)  # type: ignore[union-attr]
        start = time.perf_counter()
        frames = cached = 0
        for batch in loader:
            frames += batch.num_clips
            cached += sum(m.cached for m in batch.clips)
        seconds = time.perf_counter() - start
        out.append({"epoch": epoch, "key_frames": frames, "cache_hits": cached,
                    "seconds": seconds, "key_frames_per_s": frames / seconds})
    return out


def loader_runs(root: Path, split: str, cache_root: Path, batch_size: int) -> list[dict]:
    """No cache and cache (epoch 0 fills it, epoch 1 reads it), with 0 and 2 workers."""
    cfg = preset("tiny")
    runs: list[dict] = []
    for cache in (False, True):
        for workers in (0, 2):
            cache_dir = cache_root / f"workers{workers}" if cache else None
            ds = AvaDataset(root, split, cfg, train_options(cache_dir=cache_dir))
            for r in epoch_rates(ds, workers, batch_size, epochs=2):
                mode = ("cache, " + ("cold" if r["epoch"] == 0 else "warm")) if cache else \
                    "no cache"
                runs.append({"mode": mode, "workers": workers, **r})
                print(f"  {mode:12s} workers={workers} epoch={r['epoch']}  "
                      f"{r['key_frames_per_s']:7.1f} key frames/s  "
                      f"({r['cache_hits']}/{r['key_frames']} cache hits)", flush=True)
    return runs


def timed_rate(fn: Callable[[], int]) -> dict[str, float]:
    start = time.perf_counter()
    count = fn()
    seconds = time.perf_counter() - start
    return {"key_frames": count, "seconds": seconds, "key_frames_per_s": count / seconds}


def _ms(fn: Callable[[], object], repeats: int) -> dict[str, float]:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return {"min_ms": min(samples), "median_ms": statistics.median(samples)}


def stage_costs(ds: AvaDataset, cache_dir: Path, batch_size: int) -> dict[str, dict[str, float]]:
    """One thread, per key frame: decode, cache read, augmentation; collate per batch.

    The minimum over repeats is the least disturbed by other load on a shared machine.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    key = ds.keys[len(ds.keys) // 2]
    info = ds.video_info(key[0])
    window = read_window(info.path, key[1], ds.spec, info)
    cache = WindowCache(cache_dir, ds.spec)
    cache.store(key[0], key[1], info.fingerprint, window)
    rng = np.random.default_rng(0)
    samples = [ds.make_sample(key, window, info, False, rng) for _ in range(batch_size)]
    costs = {
        "decode_window": _ms(lambda: read_window(info.path, key[1], ds.spec, info), 10),
        "cache_read": _ms(lambda: cache.load(key[0], key[1], info.fingerprint), 20),
        "augment": _ms(lambda: ds.make_sample(key, window, info, False, rng), 20),
        f"collate_{batch_size}": _ms(lambda: collate(samples, ds.num_classes), 10),
    }
    torch.set_num_threads(threads)
    return costs


def decode_strategies(ds: AvaDataset) -> dict[str, dict[str, float]]:
    """Every key frame of the split, decoded by seeking per window vs one pass per video."""
    by_video: dict[str, list[int]] = {}
    for video, second in ds.keys:
        by_video.setdefault(video, []).append(second)

    def seek() -> int:
        for video, seconds in by_video.items():
            info = ds.video_info(video)
            for second in seconds:
                read_window(info.path, second, ds.spec, info)
        return len(ds.keys)

    def stream() -> int:
        return sum(1 for video, seconds in by_video.items()
                   for _ in iter_windows(ds.video_info(video).path, ds.spec, seconds))

    return {"seek_per_window": timed_rate(seek), "one_pass_per_video": timed_rate(stream)}


def fill_rate(root: Path, split: str, cache_dir: Path) -> dict[str, float]:
    """`fill_cache`: the cold epoch's decoding done up front, one pass per video."""
    ds = AvaDataset(root, split, preset("tiny"), train_options(cache_dir=cache_dir))
    return timed_rate(lambda: fill_cache(ds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, help="existing dataset directory (dataset.json)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--gop", type=int, default=50, help="key frame interval of toy videos")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("bench/results/loader_speed.json"))
    args = parser.parse_args()
    cfg = preset("tiny")
    with tempfile.TemporaryDirectory(prefix="aia-loader-bench-") as tmp:
        root = args.data or toy_dataset(Path(tmp) / "data", args.videos, args.seconds, args.gop)
        ds = AvaDataset(root, args.split, cfg, train_options())
        print(f"{len(ds)} key frames, spec {ds.spec}, torch threads {torch.get_num_threads()}")
        print("one thread, per stage (min / median ms):")
        stages = stage_costs(ds, Path(tmp) / "stage-cache", args.batch_size)
        for name, c in stages.items():
            print(f"  {name:20s} {c['min_ms']:7.1f} / {c['median_ms']:7.1f} ms")
        print("decoding strategies (every key frame of the split, in order):")
        strategies = decode_strategies(ds)
        for name, r in strategies.items():
            print(f"  {name:20s} {r['key_frames_per_s']:7.1f} key frames/s")
        filled = fill_rate(root, args.split, Path(tmp) / "filled-cache")
        print(f"  {'fill_cache':20s} {filled['key_frames_per_s']:7.1f} key frames/s")
        print("training loader (augmentation on; persistent workers, startup in epoch 0):")
        runs = loader_runs(root, args.split, Path(tmp) / "cache", args.batch_size)
    result = {
        "dataset": "toy (generated)" if args.data is None else str(args.data),
        "videos": None if args.data else {"count": args.videos, "seconds": args.seconds,
                                          "size": [480, 270], "fps": [25, 30], "gop": args.gop},
        "key_frames": len(ds),
        "input": {"frames": cfg.input.frames, "fps": cfg.input.fps,
                  "short_side": cfg.input.short_side, "max_long_side": cfg.input.max_long_side},
        "batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "load_average_after": os.getloadavg(),
        "stages": stages,
        "decode": strategies,
        "fill_cache": filled,
        "loader": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
