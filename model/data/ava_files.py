"""AVA-format CSV files: annotations, predictions, detector box files, excluded timestamps and
`.pbtxt` label maps. Every reader checks each row and names `file:line` on bad input, so the
loader, trainer and evaluator never meet a malformed row deep inside their own code."""

from __future__ import annotations

import csv
import math
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from model.labels import read_pbtxt

ValueKind = Literal["person_id", "score"]

# Annotations, predictions and box files all carry the value column; AVA's own readers also
# accept rows without it, so 7 columns are valid and give `value=None`.
_COLUMNS = (7, 8)
_ESCAPE = re.compile(r"\\(.)")  # pbtxt string escapes: \" and \\
_HEADER = "video_id,timestamp,x1,y1,x2,y2,action_id,{value}"


class AvaFormatError(ValueError):
    """A malformed AVA file; the message is `<path>:<line>: <problem and what was expected>`."""


@dataclass(frozen=True, slots=True)  # slots: prediction files run to millions of rows
class Row:
    video_id: str
    timestamp: int  # whole seconds (AVA writes e.g. "0902")
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 normalised to [0, 1]
    action_id: int | None  # category id in object box files; None if the column is empty
    value: float | None  # person_id (annotations) or score (predictions, box files)


def _fail(path: Path, line: int, what: str) -> AvaFormatError:
    return AvaFormatError(f"{path}:{line}: {what}")


def _number(path: Path, line: int, field: str, name: str) -> float:
    try:
        value = float(field)
    except ValueError:
        raise _fail(path, line, f"{name} {field!r} is not a number") from None
    if not math.isfinite(value):
        raise _fail(path, line, f"{name} {field!r} must be finite")
    return value


def _whole(path: Path, line: int, field: str, name: str) -> int:
    try:
        value = int(field)
    except ValueError:
        raise _fail(path, line, f"{name} {field!r} is not a whole number") from None
    if value < 0:
        raise _fail(path, line, f"{name} {field!r} must be >= 0")
    return value


def _records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(1-based line, stripped fields) of every non-blank line. Lines are split on commas
    directly (AVA files never quote; this is the hot loop), and by the csv module when
    they hold a quote."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        for line, text in enumerate(handle, start=1):
            text = text.rstrip("\r\n")
            fields = next(csv.reader([text]), []) if '"' in text else text.split(",")
            if " " in text or "\t" in text:
                fields = [f.strip() for f in fields]
            if any(fields):
                yield line, fields


def _parse_box(path: Path, line: int, fields: list[str]) -> tuple[float, float, float, float]:
    names = ("x1", "y1", "x2", "y2")
    x1, y1, x2, y2 = (_number(path, line, f, n) for f, n in zip(fields, names, strict=True))
    for name, v in zip(names, (x1, y1, x2, y2), strict=True):
        if not 0.0 <= v <= 1.0:
            raise _fail(path, line, f"{name}={v} is outside [0, 1]; boxes are normalised")
    if x2 < x1 or y2 < y1:
        raise _fail(path, line, f"box ({x1}, {y1}, {x2}, {y2}) needs x1 <= x2 and y1 <= y2")
    return x1, y1, x2, y2


def _quick_row(fields: list[str], require_action: bool) -> Row | None:
    """The row if it is well formed, else None (then `_checked_row` says what is wrong).
    Prediction files run to millions of rows, so the common case is checked in one go."""
    try:
        if len(fields) not in _COLUMNS or not fields[0]:
            return None
        timestamp = int(fields[1])
        x1, y1, x2, y2 = float(fields[2]), float(fields[3]), float(fields[4]), float(fields[5])
        action = int(fields[6]) if fields[6] else None
        number = float(fields[7]) if len(fields) == 8 and fields[7] else None
    except ValueError:
        return None
    if (timestamp >= 0 and 0.0 <= x1 <= x2 <= 1.0 and 0.0 <= y1 <= y2 <= 1.0
            and (action >= 0 if action is not None else not require_action)
            and (number is None or math.isfinite(number))):
        return Row(fields[0], timestamp, (x1, y1, x2, y2), action, number)
    return None


def _checked_row(
    path: Path, line: int, fields: list[str], value: ValueKind, require_action: bool
) -> Row:
    if len(fields) not in _COLUMNS:
        raise _fail(path, line, f"{len(fields)} columns, expected 7 or 8: "
                                f"{_HEADER.format(value=value)}")
    if not fields[0]:
        raise _fail(path, line, "empty video_id")
    timestamp = _whole(path, line, fields[1], "timestamp")
    box = _parse_box(path, line, fields[2:6])
    action: int | None = None
    if fields[6]:
        action = _whole(path, line, fields[6], "action_id")
    elif require_action:
        raise _fail(path, line, "empty action_id column; this file needs an action id per row")
    number = None
    if len(fields) == 8 and fields[7]:
        number = _number(path, line, fields[7], value)
    return Row(fields[0], timestamp, box, action, number)


def read_numbered_rows(
    path: str | Path, value: ValueKind, require_action: bool = True
) -> list[tuple[int, Row]]:
    """Like `read_rows`, with each row's 1-based line number (for callers' own error messages)."""
    path = Path(path)
    return [(n, _quick_row(f, require_action) or _checked_row(path, n, f, value, require_action))
            for n, f in _records(path)]


def read_rows(path: str | Path, value: ValueKind, require_action: bool = True) -> list[Row]:
    """Rows `video_id,timestamp,x1,y1,x2,y2,action_id[,value]`; an empty file gives no rows."""
    return [row for _, row in read_numbered_rows(path, value, require_action)]


def _format_float(v: float) -> str:
    # repr is the shortest text that reads back to the same float, so files round-trip exactly.
    text = repr(float(v))
    return text[:-2] if text.endswith(".0") else text


def _format_value(v: float | None, value: ValueKind) -> str:
    if v is None:
        return ""
    if value == "person_id" and float(v).is_integer():
        return str(int(v))
    return _format_float(v)


def _atomic_write(path: Path, lines: Iterable[str]) -> None:
    """Write to a temporary file beside `path`, then rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.writelines(lines)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _lines(rows: Iterable[Row], value: ValueKind) -> Iterator[str]:
    # Prediction files repeat each person's box once per class: format it once.
    last_box: tuple[float, ...] | None = None
    box_text = ""
    for row in rows:
        if "," in row.video_id or '"' in row.video_id or not row.video_id:
            raise ValueError(f"video_id {row.video_id!r} must be non-empty without ',' or '\"'")
        if row.box != last_box:
            last_box, box_text = row.box, ",".join(_format_float(v) for v in row.box)
        action = "" if row.action_id is None else str(row.action_id)
        yield (f"{row.video_id},{row.timestamp:04d},{box_text},{action},"
               f"{_format_value(row.value, value)}\n")


def write_rows(path: str | Path, rows: Iterable[Row], value: ValueKind) -> None:
    """AVA CSV without header (timestamps as "%04d", as AVA writes them); atomic."""
    _atomic_write(Path(path), _lines(rows, value))


def read_exclusions(path: str | Path) -> set[tuple[str, int]]:
    """Excluded key frames, rows `video_id,timestamp`."""
    path = Path(path)
    keys: set[tuple[str, int]] = set()
    for line, fields in _records(path):
        if len(fields) != 2:
            raise _fail(path, line, f"{len(fields)} columns, expected 2: video_id,timestamp")
        if not fields[0]:
            raise _fail(path, line, "empty video_id")
        keys.add((fields[0], _whole(path, line, fields[1], "timestamp")))
    return keys


def write_exclusions(path: str | Path, keys: Iterable[tuple[str, int]]) -> None:
    _atomic_write(Path(path), (f"{video},{int(t):04d}\n" for video, t in sorted(set(keys))))


def read_label_map(path: str | Path) -> dict[int, str]:
    """An AVA `.pbtxt` label map -> {id: name}."""
    path = Path(path)
    labels = read_pbtxt(path.read_text(encoding="utf-8"), source=str(path))
    return {i: _ESCAPE.sub(r"\1", name) for i, name in labels.items()}


def write_label_map(path: str | Path, labels: Mapping[int, str]) -> None:
    """AVA `.pbtxt` (`item { name: "..." id: N }`), sorted by id; atomic."""
    for ident, name in labels.items():
        if "}" in name or "\n" in name:
            raise ValueError(f"label {ident} name {name!r}: '}}' and newlines cannot be stored")
    items = []
    for ident in sorted(labels):
        name = labels[ident].replace("\\", "\\\\").replace('"', '\\"')
        items.append(f'item {{\n  name: "{name}"\n  id: {int(ident)}\n}}\n')
    _atomic_write(Path(path), items)
