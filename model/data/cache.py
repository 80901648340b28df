"""Decoded windows kept on disk, so epochs after the first skip decoding.

One uint8 `.npy` per (video, second, window spec, source file): `ROOT/<spec key>/<video_id>/
<second>_<digest>.npy`, where the digest covers the spec and the video file's size and mtime,
so a re-encoded video or another input spec never returns a stale window. Files are written to
a temporary name and renamed, so concurrent workers and interrupted runs never leave half a
window; a file that still fails to load counts as a miss and is rewritten.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.data.video import WindowSpec


@dataclass(frozen=True)
class WindowCache:
    root: Path
    spec: WindowSpec

    def path(self, video_id: str, second: int, fingerprint: str) -> Path:
        digest = hashlib.sha1(f"{self.spec.key()}|{fingerprint}".encode()).hexdigest()[:16]
        return self.root / self.spec.key() / video_id / f"{second:06d}_{digest}.npy"

    def has(self, video_id: str, second: int, fingerprint: str) -> bool:
        return self.path(video_id, second, fingerprint).is_file()

    def load(self, video_id: str, second: int, fingerprint: str) -> np.ndarray | None:
        """The cached window, or None on a miss (absent or unreadable file)."""
        path = self.path(video_id, second, fingerprint)
        try:
            window = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if window.dtype != np.uint8 or window.ndim != 4 or window.shape[0] != self.spec.frames:
            return None
        return window

    def store(self, video_id: str, second: int, fingerprint: str, window: np.ndarray) -> Path:
        """Write atomically (temporary file in the same folder, then rename)."""
        path = self.path(video_id, second, fingerprint)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                np.save(handle, np.ascontiguousarray(window, dtype=np.uint8), allow_pickle=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path
