"""AVA label maps: names, groups and the evaluated subset, shipped in the package."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from model.config import ClassGroup, LossKind

LABEL_DIR = Path(__file__).parent / "labels"  # shipped as package data
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
    return read_label_table(LABEL_DIR / "ava_action_groups_v2.2.csv")


def class_groups(labels: tuple[Label, ...]) -> tuple[ClassGroup, ...]:
    """Loss groups from a label table: one per run of consecutive ids sharing a group.

    `pose` is single-label (softmax focal, weight 1.2 as the reference); every other group is
    multi-label (sigmoid focal) weighted by its size, which is what the reference's 49 / 17
    for AVA's object / person groups are.
    """
    ordered = sorted(labels, key=lambda label: label.id)
    if [label.id for label in ordered] != list(range(1, len(ordered) + 1)):
        raise ValueError(f"label ids must be 1..{len(ordered)} without gaps")
    groups: list[ClassGroup] = []
    start = 0
    for i in range(1, len(ordered) + 1):
        if i == len(ordered) or ordered[i].group != ordered[start].group:
            name = ordered[start].group
            if any(g.name == name for g in groups):
                raise ValueError(f"group {name!r} is split into several id ranges")
            single = name == "pose"
            size = i - start
            groups.append(ClassGroup(name, ordered[start].id, ordered[i - 1].id,
                                     LossKind.SOFTMAX if single else LossKind.SIGMOID,
                                     1.2 if single else float(size)))
            start = i
    return tuple(groups)
