"""Export benchmark: the full-size `r50_4x16` preset (random weights) through `aia export`.

Writes a random-weight checkpoint, exports both graphs to ONNX and TorchScript with the
parity check of every export (64 frames as the preset; smaller frames than the preset's 256
short side by default, to keep the CPU reference runs short), prints the time each export
took and the parity numbers, and writes JSON (--out). The artifact goes to a temp dir and is
deleted unless --keep names a folder for it.

    python bench/export_r50.py --dtype fp32 --out bench/results/export_r50.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from exporters.export import ExportOptions, export_artifact
from exporters.graphs import Dtype, Format
from exporters.random_weights import random_checkpoint
from model.config import preset


def run(preset_name: str, dtype: Dtype, short_side: int, keep: Path | None) -> dict[str, Any]:
    cfg = preset(preset_name)
    with tempfile.TemporaryDirectory(prefix="aia-export-bench-") as tmp:
        start = time.perf_counter()
        checkpoint = random_checkpoint(cfg, Path(tmp) / "random.pt")
        made = time.perf_counter() - start
        out = keep if keep is not None else Path(tmp) / "artifact"
        options = ExportOptions(formats=(Format.ONNX, Format.TORCHSCRIPT), dtype=dtype,
                                parity_short_side=short_side, overwrite=keep is not None)
        start = time.perf_counter()
        result = export_artifact(checkpoint, out, options)
        total = time.perf_counter() - start
        sizes = {name: rec["bytes"] for name, rec in result.manifest["files"].items()}
    parity = result.manifest["parity"]
    return {
        "preset": preset_name, "dtype": dtype.value, "frames": cfg.input.frames,
        "parity_short_side": short_side, "export_seconds": result.seconds,
        "checkpoint_seconds": round(made, 1), "total_seconds": round(total, 1),
        "parity_seconds": round(total - sum(result.seconds.values()), 1),
        "file_bytes": sizes, "parity_passed": parity["passed"], "bound": parity["bound"],
        "max_abs_logits": {f: r["max_abs_logits"] for f, r in parity["formats"].items()},
        "max_abs_features": {f: r["max_abs_features"] for f, r in parity["formats"].items()},
        "cases": parity["formats"],
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "platform": platform.platform()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="r50_4x16")
    parser.add_argument("--dtype", choices=[d.value for d in Dtype], default="fp32")
    parser.add_argument("--parity-short-side", type=int, default=128)
    parser.add_argument("--keep", type=Path, default=None, help="keep the artifact here")
    parser.add_argument("--out", type=Path, default=Path("bench/results/export_r50.json"))
    args = parser.parse_args()
    record = run(args.preset, Dtype(args.dtype), args.parity_short_side, args.keep)
    for step, seconds in record["export_seconds"].items():
        print(f"{step:24s} {seconds:8.1f} s")
    print(f"{'parity (all formats)':24s} {record['parity_seconds']:8.1f} s")
    for fmt, diff in record["max_abs_logits"].items():
        print(f"{fmt:12s} max |logit diff| {diff:.3g}   max |feature diff| "
              f"{record['max_abs_features'][fmt]:.3g}")
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results[f"{args.preset}/{args.dtype}"] = record
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
