"""Request parameters (query string or multipart form fields) -> checked values.

Everything a client can get wrong raises InvalidParameter / InvalidBoxes (422) with a message
that says what to send instead.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from model.labels import Label
from service.errors import CostLimit, InvalidBoxes, InvalidParameter
from service.settings import Settings

DEFAULT_MIN_SCORE = 0.1
DEFAULT_TOP_K = 5
MAX_CLIP_INDEX = 10_000_000


@dataclass(frozen=True)
class CostBounds:
    """What one request may ask for (settings of the same names, AIA_MAX_*)."""

    max_persons: int = 64  # client boxes per key frame
    max_keyframes: int = 120  # key frames per request
    max_person_keyframes: int = 2000  # client boxes summed over key frames
    max_field_bytes: int = 1 << 20  # any one parameter

    @classmethod
    def from_settings(cls, s: Settings) -> CostBounds:
        return cls(s.max_persons, s.max_keyframes, s.max_person_keyframes, s.max_field_bytes)

    def check_keyframes(self, count: int, what: str) -> None:
        if count > self.max_keyframes:
            raise CostLimit(f"{what}: {count} key frames exceed the limit {self.max_keyframes} "
                            "per request (AIA_MAX_KEYFRAMES); send shorter clips or fewer "
                            "box timestamps", "max_keyframes", self.max_keyframes)


def check_field_sizes(values: Mapping[str, str], bounds: CostBounds) -> None:
    for name, text in values.items():
        if len(text) > bounds.max_field_bytes:
            raise CostLimit(f"{name}: {len(text)} bytes exceed the limit "
                            f"{bounds.max_field_bytes} per parameter (AIA_MAX_FIELD_BYTES)",
                            "max_field_bytes", bounds.max_field_bytes)


def _json_depth(text: str) -> int:
    """Deepest nesting of [ and { outside strings, without parsing (a parser recurses)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


class OutputFormat(enum.StrEnum):
    json = "json"
    ava_csv = "ava_csv"


@dataclass(frozen=True)
class BoxesAt:
    """The client's person boxes at one key frame: time in the clip, [n,4] normalised."""

    timestamp: float
    boxes: np.ndarray  # float32 [n,4] x1, y1, x2, y2 in [0,1]


@dataclass(frozen=True)
class DetectParams:
    min_score: float = DEFAULT_MIN_SCORE
    top_k: int = DEFAULT_TOP_K
    labels: frozenset[int] | None = None  # allow-list of action ids; None: all
    format: OutputFormat = OutputFormat.json
    boxes: tuple[BoxesAt, ...] | None = None  # None: detector (or 422 without one)


def _number(name: str, text: str, low: float, high: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidParameter(f"{name}={text!r}: expected a number in [{low}, {high}]") from None
    if not (math.isfinite(value) and low <= value <= high):
        raise InvalidParameter(f"{name}={text!r}: expected a number in [{low}, {high}]")
    return value


def _integer(name: str, text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InvalidParameter(f"{name}={text!r}: expected an integer in [{low}, {high}]"
                               ) from None
    if not low <= value <= high:
        raise InvalidParameter(f"{name}={text!r}: expected an integer in [{low}, {high}]")
    return value


def parse_labels(text: str, labels: Sequence[Label]) -> frozenset[int]:
    """'1,3,watch (a person)' -> ids; ids or names, case-insensitive names."""
    by_name = {label.name.lower(): label.id for label in labels}
    ids = {label.id for label in labels}
    chosen: set[int] = set()
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if item.isdigit() and int(item) in ids:
            chosen.add(int(item))
        elif item.lower() in by_name:
            chosen.add(by_name[item.lower()])
        else:
            raise InvalidParameter(f"labels: {item!r} is neither an action id nor a name of "
                                   "this model (GET /v1/models lists them)")
    if not chosen:
        raise InvalidParameter("labels: empty allow-list; omit the parameter for all actions")
    return frozenset(chosen)


def _box_row(row: object, where: str) -> list[float]:
    if not (isinstance(row, list) and len(row) == 4
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in row)):
        raise InvalidBoxes(f"{where}: expected [x1, y1, x2, y2] (4 numbers), got {row!r}")
    x1, y1, x2, y2 = (float(v) for v in row)
    if not (0.0 <= x1 < x2 <= 1.0 and 0.0 <= y1 < y2 <= 1.0):
        raise InvalidBoxes(f"{where}: {row!r}: coordinates must be normalised to [0,1] with "
                           "x1 < x2 and y1 < y2")
    return [x1, y1, x2, y2]


def parse_boxes(text: str, bounds: CostBounds) -> tuple[BoxesAt, ...]:
    """The `boxes` parameter: [{"timestamp": 1.0, "boxes": [[x1,y1,x2,y2], ...]}, ...]."""
    max_persons = bounds.max_persons
    if len(text) > bounds.max_field_bytes:
        raise CostLimit(f"boxes: {len(text)} bytes exceed the limit {bounds.max_field_bytes} "
                        "(AIA_MAX_FIELD_BYTES)", "max_field_bytes", bounds.max_field_bytes)
    if _json_depth(text) > 4:  # list > entry > boxes > box
        raise InvalidBoxes('boxes: nested deeper than [{"timestamp": t, "boxes": [[x1, y1, '
                           'x2, y2], ...]}, ...] allows')
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidBoxes(f"boxes: not valid JSON ({err}); expected "
                           '[{"timestamp": 1.0, "boxes": [[x1, y1, x2, y2], ...]}, ...]') from None
    if not isinstance(data, list) or not data:
        raise InvalidBoxes('boxes: expected a non-empty JSON list of {"timestamp": seconds, '
                           '"boxes": [[x1, y1, x2, y2], ...]}')
    bounds.check_keyframes(len(data), "boxes")
    persons = sum(len(e["boxes"]) for e in data
                  if isinstance(e, dict) and isinstance(e.get("boxes"), list))
    if persons > bounds.max_person_keyframes:
        raise CostLimit(f"boxes: {persons} person boxes over all key frames exceed the limit "
                        f"{bounds.max_person_keyframes} (AIA_MAX_PERSON_KEYFRAMES)",
                        "max_person_keyframes", bounds.max_person_keyframes)
    out: dict[float, BoxesAt] = {}
    for i, entry in enumerate(data):
        where = f"boxes[{i}]"
        if not isinstance(entry, dict) or set(entry) != {"timestamp", "boxes"}:
            raise InvalidBoxes(f'{where}: expected {{"timestamp": seconds, "boxes": [...]}}')
        t, rows = entry["timestamp"], entry["boxes"]
        if isinstance(t, bool) or not isinstance(t, int | float) or not (
                math.isfinite(t) and t >= 0):
            raise InvalidBoxes(f"{where}.timestamp: expected seconds >= 0, got {t!r}")
        if not isinstance(rows, list) or len(rows) > max_persons:
            raise InvalidBoxes(f"{where}.boxes: expected a list of at most {max_persons} boxes")
        if float(t) in out:
            raise InvalidBoxes(f"{where}.timestamp: {t} appears twice; one entry per key frame")
        boxes = [_box_row(row, f"{where}.boxes[{j}]") for j, row in enumerate(rows)]
        out[float(t)] = BoxesAt(float(t), np.asarray(boxes, np.float32).reshape(-1, 4))
    return tuple(out[t] for t in sorted(out))


def detect_params(values: Mapping[str, str], labels: Sequence[Label],
                  bounds: CostBounds) -> DetectParams:
    """Query parameters merged with multipart fields (fields win)."""
    check_field_sizes(values, bounds)
    fmt = values.get("format", OutputFormat.json.value)
    if fmt not in OutputFormat.__members__:
        raise InvalidParameter(f"format={fmt!r}: expected json or ava_csv")
    return DetectParams(
        min_score=_number("min_score", values.get("min_score", str(DEFAULT_MIN_SCORE)), 0.0, 1.0),
        top_k=_integer("top_k", values.get("top_k", str(DEFAULT_TOP_K)), 1, 1000),
        labels=parse_labels(values["labels"], labels) if values.get("labels") else None,
        format=OutputFormat(fmt),
        boxes=parse_boxes(values["boxes"], bounds) if values.get("boxes") else None,
    )


@dataclass(frozen=True)
class ClipParams:
    clip_index: int
    start_s: float | None  # None: clip_index * the clip's duration


def clip_params(values: Mapping[str, str]) -> ClipParams:
    if "clip_index" not in values:
        raise InvalidParameter("clip_index: required (0 for a session's first clip)")
    index = _integer("clip_index", values["clip_index"], 0, MAX_CLIP_INDEX)
    start = values.get("start_s")
    return ClipParams(index, None if start in (None, "") else _number(
        "start_s", start, 0.0, float(MAX_CLIP_INDEX)))
