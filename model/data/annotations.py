"""Annotation and box files of one split, grouped per key frame into flat arrays.

Ground truth has one CSV row per (person, action); rows of a key frame with the same person id
and box become one person with a multi-hot label row. Box files (detector persons, objects)
keep one row per box. Everything lives in a few flat numpy arrays plus an index of
(video, second) -> row range, so the dataset pickles quickly into DataLoader workers even at
AVA scale (hundreds of thousands of key frames).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.data.ava_files import (
    AvaFormatError,
    Row,
    ValueKind,
    read_exclusions,
    read_label_map,
    read_numbered_rows,
)
from model.data.layout import DatasetError

Key = tuple[str, int]  # (video_id, second)


@dataclass(frozen=True)
class BoxTable:
    boxes: np.ndarray  # float32 [R,4] x1, y1, x2, y2 normalised to [0, 1]
    scores: np.ndarray  # float32 [R] (1.0 for ground truth)
    ids: np.ndarray  # int64 [R] person id (-1 unknown) or object category
    labels: np.ndarray  # uint8 [R,A] multi-hot, column a = action a+1 (A = 0 for box files)
    index: dict[Key, tuple[int, int]]  # key frame -> [start, stop) rows

    def rows(self, key: Key) -> slice:
        start, stop = self.index.get(key, (0, 0))
        return slice(start, stop)

    def keys(self) -> set[Key]:
        return set(self.index)


def _table(groups: dict[Key, list[tuple[tuple[float, ...], float, int, np.ndarray]]],
           num_classes: int) -> BoxTable:
    """groups: key -> [(box, score, id, labels [A])] -> BoxTable in key order."""
    index: dict[Key, tuple[int, int]] = {}
    flat = [row for key in sorted(groups) for row in groups[key]]
    start = 0
    for key in sorted(groups):
        index[key] = (start, start + len(groups[key]))
        start += len(groups[key])
    if not flat:
        return BoxTable(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                        np.zeros(0, np.int64), np.zeros((0, num_classes), np.uint8), index)
    return BoxTable(
        boxes=np.array([r[0] for r in flat], dtype=np.float32).reshape(-1, 4),
        scores=np.array([r[1] for r in flat], dtype=np.float32),
        ids=np.array([r[2] for r in flat], dtype=np.int64),
        labels=np.stack([r[3] for r in flat]).astype(np.uint8).reshape(len(flat), num_classes),
        index=index,
    )


def read_checked_label_map(path: Path) -> dict[int, str]:
    """The label map; ids must be 1..A (target column a is action a+1)."""
    if not path.is_file():
        raise DatasetError(f"{path}: label map not found")
    labels = read_label_map(path)
    if sorted(labels) != list(range(1, len(labels) + 1)):
        raise DatasetError(f"{path}: label ids must be 1..{len(labels)} without gaps "
                           f"(target column a is action a+1); got {sorted(labels)}")
    return labels


def _numbered(path: Path, what: str, value: ValueKind, require_action: bool,
              allow_empty: bool) -> list[tuple[int, Row]]:
    if not path.is_file():
        raise DatasetError(f"{path}: {what} not found")
    rows = read_numbered_rows(path, value, require_action=require_action)
    if not rows and not allow_empty:
        raise DatasetError(f"{path}: {what} has no rows")
    return rows


def read_ground_truth(path: Path, labels: Mapping[int, str], label_map: Path) -> BoxTable:
    """Annotation CSV -> one row per (key frame, person) with multi-hot actions."""
    num_classes = len(labels)
    persons: dict[Key, dict[tuple[int, tuple[float, ...]], np.ndarray]] = {}
    for line, row in _numbered(path, "annotation file", "person_id", True, allow_empty=False):
        assert row.action_id is not None  # require_action=True
        if row.action_id not in labels:
            raise AvaFormatError(f"{path}:{line}: action_id {row.action_id} is not in the "
                                 f"label map {label_map} (ids 1..{num_classes})")
        pid = -1 if row.value is None else int(row.value)
        frame = persons.setdefault((row.video_id, row.timestamp), {})
        multi_hot = frame.setdefault((pid, row.box), np.zeros(num_classes, np.uint8))
        multi_hot[row.action_id - 1] = 1
    groups = {key: [(box, 1.0, pid, hot) for (pid, box), hot in frame.items()]
              for key, frame in persons.items()}
    return _table(groups, num_classes)


def read_box_file(path: Path, what: str, categories: Mapping[int, str] | None = None) -> BoxTable:
    """Detector person boxes (empty action column) or object boxes (category id per row).

    A missing score reads as 1.0; with `categories` given, an unknown category id stops.
    """
    objects = categories is not None
    groups: dict[Key, list[tuple[tuple[float, ...], float, int, np.ndarray]]] = {}
    for line, row in _numbered(path, what, "score", objects, allow_empty=True):
        category = -1 if row.action_id is None else row.action_id
        if categories and category not in categories:
            raise AvaFormatError(f"{path}:{line}: category_id {category} is not one of the "
                                 f"object_categories of dataset.json {sorted(categories)}")
        score = 1.0 if row.value is None else row.value
        groups.setdefault((row.video_id, row.timestamp), []).append(
            (row.box, score, category, np.zeros(0, np.uint8)))
    return _table(groups, 0)


def empty_table(num_classes: int = 0) -> BoxTable:
    return _table({}, num_classes)


def read_exclusions_checked(path: Path | None) -> set[Key]:
    if path is None:
        return set()
    if not path.is_file():
        raise DatasetError(f"{path}: excluded-timestamps file not found")
    return read_exclusions(path)
