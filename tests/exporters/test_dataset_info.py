"""What a manifest says the action model was trained on, from its label table."""

from __future__ import annotations

import json
from pathlib import Path

from exporters.dataset_info import describe_dataset
from model.labels import ava_labels
from model.synth.classes import CLASSES, label_names


def test_ava_labels_are_ava() -> None:
    rows = [[lb.id, lb.name, lb.group, lb.evaluated] for lb in ava_labels()]
    assert describe_dataset(rows) == {"name": "ava-v2.2", "label_set": "ava-v2.2-80",
                                      "real_footage": True}


def test_synthetic_labels_carry_the_generator_version(tmp_path: Path) -> None:
    rows = [{"id": c.id, "name": c.name} for c in CLASSES]
    (tmp_path / "dataset.json").write_text(json.dumps({"synth": {"version": 3}}))
    assert describe_dataset(rows, str(tmp_path)) == {
        "name": "synthetic-interactions-v3", "label_set": "synthetic-20", "real_footage": False}
    unknown = describe_dataset(rows, str(tmp_path / "gone"))  # the data is not there any more
    assert unknown["name"] == "synthetic-interactions"
    assert unknown["real_footage"] is False


def test_the_18_classes_of_versions_1_and_2_are_still_synthetic(tmp_path: Path) -> None:
    """A model trained before the lamp family keeps its honest description."""
    old = [{"id": i, "name": name} for i, name in enumerate(label_names(2), start=1)]
    assert len(old) == 18
    assert "lamp lit red" not in label_names(2)
    (tmp_path / "dataset.json").write_text(json.dumps({"synth": {"version": 2}}))
    assert describe_dataset(old, str(tmp_path)) == {
        "name": "synthetic-interactions-v2", "label_set": "synthetic-18", "real_footage": False}


def test_other_labels_are_a_custom_dataset() -> None:
    assert describe_dataset([[1, "dance", "pose", True]]) == {
        "name": "custom", "label_set": "custom-1", "real_footage": True}


def test_an_artifact_without_a_recorded_dataset_gets_it_from_its_labels(
        ts_artifact: Path, tmp_path: Path) -> None:
    import shutil

    from exporters.artifact import MANIFEST, load_artifact

    copy = tmp_path / "old"
    shutil.copytree(ts_artifact, copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["training"].pop("dataset", None)
    (copy / MANIFEST).write_text(json.dumps(manifest))
    dataset = load_artifact(copy).dataset
    assert dataset.name == "ava-v2.2"  # the test checkpoints carry AVA's 80 labels
    assert dataset.real_footage
