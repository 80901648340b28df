"""AVA label maps: names, groups and the evaluated subset, shipped in the package."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

_ITEM = re.compile(r"item\s*\{(.*?)\}", re.S)
_NAME = re.compile(r'name:\s*"((?:[^"\\]|\\.)*)"')
_ID = re.compile(r"\b(?:id|label_id):\s*(\d+)")


@dataclass(frozen=True)
class Label:
    id: int
    name: str
    group: str
    evaluated: bool


def read_pbtxt(text: str, source: str = "<pbtxt>") -> dict[int, str]:
    """Parse an AVA `.pbtxt` label map -> {id: name}; malformed items raise naming `source`."""
    labels: dict[int, str] = {}
    for n, item in enumerate(_ITEM.findall(text)):
        name, ident = _NAME.search(item), _ID.search(item)
        if name is None or ident is None:
            raise ValueError(f"{source}: item {n} needs a name and an id: {item.strip()!r}")
        labels[int(ident.group(1))] = name.group(1)
    if not labels:
        raise ValueError(f"{source}: no `item {{ name: ... id: ... }}` entries found")
    return labels


def read_label_table(path: Path | str) -> tuple[Label, ...]:
    """CSV `id,name,group,evaluated` (the format of `labels/ava_action_groups_v2.2.csv`)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return tuple(
        Label(int(r["id"]), r["name"], r["group"], r["evaluated"].strip() == "1") for r in rows
    )


def ava_labels() -> tuple[Label, ...]:
    """The 80 AVA v2.2 actions with their group (pose/object/person) and the 60 evaluated."""
    table = resources.files("model") / "labels" / "ava_action_groups_v2.2.csv"
    with resources.as_file(table) as path:
        return read_label_table(path)
