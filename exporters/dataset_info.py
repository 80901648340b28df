"""What an action model was trained on, as its manifest records it (`training.dataset`).

Every answer of the service names it, so that nobody mistakes the synthetic benchmark's
actions for real ones. The label table decides: AVA's 80 actions are `ava-v2.2`; the
synthetic benchmark's classes are `synthetic-interactions-v<generator version>` (the version
read from the training data's dataset.json when it is still there); anything else is a
custom AVA-format dataset, taken to be real footage.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SYNTHETIC = "synthetic-interactions"


def _names(labels: Sequence[Any]) -> list[str]:
    """Label names from checkpoint rows ([id, name, group, evaluated]) or manifest dicts."""
    return [str(row["name"] if isinstance(row, dict) else row[1]) for row in labels]


def _generator_version(data_root: str | None) -> int | None:
    if not data_root:
        return None
    path = Path(data_root) / "dataset.json"
    try:
        info = json.loads(path.read_text())
        return int(info["synth"]["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def describe_dataset(labels: Sequence[Any], data_root: str | None = None) -> dict[str, Any]:
    """{name, label_set, real_footage} for a model's label table."""
    from model.labels import ava_labels
    from model.synth.classes import label_names

    names = _names(labels)
    if names == [label.name for label in ava_labels()]:
        return {"name": "ava-v2.2", "label_set": f"ava-v2.2-{len(names)}", "real_footage": True}
    if tuple(names) in (label_names(3), label_names(2)):
        version = _generator_version(data_root)
        name = f"{SYNTHETIC}-v{version}" if version is not None else SYNTHETIC
        return {"name": name, "label_set": f"synthetic-{len(names)}", "real_footage": False}
    return {"name": "custom", "label_set": f"custom-{len(names)}", "real_footage": True}
