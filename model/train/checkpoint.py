"""Training checkpoints: atomic writes, the last k kept plus the best, refusal of bad files.

A checkpoint is a plain dict loaded with `weights_only=True` (tensors, numbers, strings,
lists, dicts: nothing is unpickled that could run code). It holds everything `--resume` needs
(model, optimiser, scheduler, step, RNG states, AMU bank) and what the exporters need
(model config, label table, provenance, validation score).
"""

from __future__ import annotations

import os
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = "aia-checkpoint/1"
REQUIRED = ("format", "step", "model_config", "train_config", "model", "labels")
_STEP_FILE = re.compile(r"^step-(\d{8})\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file and what is wrong."""


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """Write to a temp file in the same folder, fsync, then rename over `path`: a reader
    (or a crash) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for truncated/corrupt archives
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or corrupt?): {err}"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path}: format {found!r}, expected {FORMAT!r}")
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"{path}: missing {missing}")
    return state


def rng_state() -> dict[str, Any]:
    py = random.getstate()
    np_state = np.random.get_state()
    return {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy(), *rest))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class CheckpointDir:
    """`<out>/checkpoints/step-00001000.pt` (the last k) and `best.pt`."""

    def __init__(self, out_dir: str | Path, keep_last: int) -> None:
        self.dir = Path(out_dir) / "checkpoints"
        self.keep_last = keep_last

    @property
    def best(self) -> Path:
        return self.dir / "best.pt"

    def steps(self) -> list[Path]:
        if not self.dir.is_dir():
            return []
        found = [p for p in self.dir.iterdir() if _STEP_FILE.match(p.name)]
        return sorted(found, key=lambda p: p.name)

    def latest(self) -> Path | None:
        steps = self.steps()
        return steps[-1] if steps else None

    def save(self, state: dict[str, Any], best: bool = False) -> Path:
        path = self.dir / f"step-{state['step']:08d}.pt"
        save_atomic(state, path)
        if best:
            save_atomic(state, self.best)
        for old in self.steps()[: -self.keep_last]:
            old.unlink(missing_ok=True)
        return path
