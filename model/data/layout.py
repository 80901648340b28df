"""`dataset.json`: where an AVA-format dataset directory keeps its files.

```
{"format": "aia-ava/1", "fps": 25.0, "label_map": "labels.pbtxt", "label_table": "labels.csv",
 "object_categories": {"1": "ball"}, "videos": "videos",
 "splits": {"train": {"annotations": ..., "exclusions": ..., "person_boxes": ...,
                      "object_boxes": ...}}}
```
Paths are relative to the directory. Real AVA users write this file by hand, so only what the
loader cannot do without is required: the label map, the videos folder and each split's
annotations; exclusions and box files may be absent or null.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = "aia-ava/1"
DATASET_FILE = "dataset.json"
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov")
_SPLIT_KEYS = ("annotations", "exclusions", "person_boxes", "object_boxes")


class DatasetError(ValueError):
    """A dataset directory the loader cannot use; the message names the file at fault."""


@dataclass(frozen=True)
class SplitFiles:
    annotations: Path
    exclusions: Path | None
    person_boxes: Path | None  # detector output: video_id,timestamp,x1,y1,x2,y2,,score
    object_boxes: Path | None  # video_id,timestamp,x1,y1,x2,y2,category_id,score


@dataclass(frozen=True)
class DatasetLayout:
    root: Path
    fps: float | None
    label_map: Path
    label_table: Path | None
    object_categories: dict[int, str]
    videos: Path
    splits: dict[str, SplitFiles]

    @property
    def source(self) -> Path:
        return self.root / DATASET_FILE

    def split(self, name: str) -> SplitFiles:
        if name not in self.splits:
            raise DatasetError(f"{self.source}: no split {name!r}; it has {sorted(self.splits)}")
        return self.splits[name]

    def video_paths(self) -> dict[str, Path]:
        """video_id -> file, from the videos folder (`<video_id>.<mp4|mkv|webm|...>`)."""
        if not self.videos.is_dir():
            raise DatasetError(f"{self.source}: videos folder {self.videos} does not exist")
        found: dict[str, Path] = {}
        for path in sorted(self.videos.iterdir()):
            if path.suffix.lower() in VIDEO_SUFFIXES and path.is_file():
                found.setdefault(path.stem, path)
        return found


def _optional(root: Path, source: Path, data: dict[str, Any], key: str) -> Path | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise DatasetError(f"{source}: {key!r} must be a path string, got {value!r}")
    return root / value


def _required(root: Path, source: Path, data: dict[str, Any], key: str) -> Path:
    path = _optional(root, source, data, key)
    if path is None:
        raise DatasetError(f"{source}: missing {key!r} (a path relative to {root})")
    return path


def _split(root: Path, source: Path, name: str, data: Any) -> SplitFiles:
    where = source.with_name(f"{source.name}[splits.{name}]")
    if not isinstance(data, dict):
        raise DatasetError(f"{where}: must be an object with keys {list(_SPLIT_KEYS)}")
    unknown = sorted(set(data) - set(_SPLIT_KEYS))
    if unknown:
        raise DatasetError(f"{where}: unknown key(s) {unknown}; known: {list(_SPLIT_KEYS)}")
    return SplitFiles(_required(root, where, data, "annotations"),
                      _optional(root, where, data, "exclusions"),
                      _optional(root, where, data, "person_boxes"),
                      _optional(root, where, data, "object_boxes"))


def _categories(source: Path, data: Any) -> dict[int, str]:
    if data is None:
        return {}
    try:
        return {int(k): str(v) for k, v in dict(data).items()}
    except (TypeError, ValueError) as err:
        raise DatasetError(f"{source}: object_categories must map ids to names: {err}") from None


def load_layout(path: str | Path) -> DatasetLayout:
    """Read `DIR/dataset.json` (`path` is DIR or the file itself)."""
    path = Path(path)
    source = path if path.suffix == ".json" else path / DATASET_FILE
    root = source.parent
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{source}: not found; a dataset needs {DATASET_FILE}") from None
    except json.JSONDecodeError as err:
        raise DatasetError(f"{source}:{err.lineno}: invalid JSON: {err.msg}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else data
        raise DatasetError(f"{source}: format {found!r}, expected {FORMAT!r}")
    splits = data.get("splits")
    if not isinstance(splits, dict) or not splits:
        raise DatasetError(f"{source}: 'splits' must name at least one split")
    fps = data.get("fps")
    if fps is not None and (not isinstance(fps, int | float) or fps <= 0):
        raise DatasetError(f"{source}: fps must be a positive number, got {fps!r}")
    return DatasetLayout(
        root=root,
        fps=None if fps is None else float(fps),
        label_map=_required(root, source, data, "label_map"),
        label_table=_optional(root, source, data, "label_table"),
        object_categories=_categories(source, data.get("object_categories")),
        videos=_required(root, source, data, "videos"),
        splits={name: _split(root, source, name, s) for name, s in splits.items()},
    )
