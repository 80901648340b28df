"""Small real clips and their person boxes for the HTTP and engine tests."""

from __future__ import annotations

import json
from pathlib import Path

from tests.service.media import write_test_video

SECONDS = 4
# two persons at 0 s and 2 s, one at 1 s, none at 3 s: persons per key frame follow the boxes
BOXES = [
    {"timestamp": 0.0, "boxes": [[0.1, 0.1, 0.5, 0.9], [0.5, 0.2, 0.9, 0.95]]},
    {"timestamp": 1.0, "boxes": [[0.12, 0.1, 0.52, 0.9]]},
    {"timestamp": 2.0, "boxes": [[0.14, 0.1, 0.54, 0.9], [0.48, 0.2, 0.88, 0.95]]},
    {"timestamp": 3.0, "boxes": []},
]


def boxes_json() -> str:
    return json.dumps(BOXES)


def write_clip(folder: Path, name: str = "clip.mp4") -> Path:
    return write_test_video(folder / name, seconds=SECONDS, size=(64, 48))
