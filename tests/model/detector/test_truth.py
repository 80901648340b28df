"""Exact boxes rebuilt from the generator agree with what `aia synth` wrote."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model.data.ava_files import read_rows
from model.detector.data import frame_indices, load_samples, training_target
from model.detector.truth import TruthError, frame_truth, open_synth
from tests.model.detector.conftest import TINY


def test_rebuilt_person_boxes_are_the_annotated_ones(tiny_synth: Path) -> None:
    ds = open_synth(tiny_synth)
    for split in ("train", "val"):
        rows = read_rows(tiny_synth / "annotations" / f"{split}.csv", "person_id")
        written = {(r.video_id, r.timestamp, int(r.value or 0), r.box) for r in rows}
        rebuilt = set()
        for video_id in ds.videos(split):
            scene = ds.scene(video_id)
            for second in scene.key_seconds:
                if second in scene.glitches:
                    continue
                truth = frame_truth(scene, scene.key_frame(second))
                size = [scene.width, scene.height, scene.width, scene.height]
                norm = truth.persons / np.asarray(size)  # [P,4]
                for pid, box in zip(truth.person_ids, np.round(norm, 4), strict=True):
                    rebuilt.add((video_id, second, int(pid), tuple(float(v) for v in box)))
        assert written
        assert rebuilt == written


def test_samples_have_frames_and_targets(tiny_synth: Path) -> None:
    ds = open_synth(tiny_synth)
    video = ds.videos("train")[0]
    assert len(frame_indices(ds, video, 2)) > len(frame_indices(ds, video, 1))
    samples = load_samples(ds, "train", 1)
    assert samples[0].frame.shape == (64, 96, 3)
    assert samples[0].frame.dtype == np.uint8
    target = training_target(samples[0].truth, TINY)
    labels = set(target["labels"].tolist())
    assert 1 in labels  # persons
    assert labels <= {1, 2, 3}
    assert len(target["boxes"]) == len(samples[0].truth.persons) + len(samples[0].truth.objects)


def test_a_dataset_not_from_aia_synth_is_refused(tiny_synth: Path, tmp_path: Path) -> None:
    data = json.loads((tiny_synth / "dataset.json").read_text())
    del data["synth"]
    (tmp_path / "dataset.json").write_text(json.dumps(data))
    with pytest.raises(TruthError, match="not made by `aia synth`"):
        open_synth(tmp_path)


@pytest.mark.parametrize(("version", "accepted"), [(1, False), (2, True), (3, True), (4, False),
                                                   ("3", False)])
def test_versions_with_the_same_scenes_are_accepted(tiny_synth: Path, tmp_path: Path,
                                                     version: object, accepted: bool) -> None:
    """Version 3 changed labels only (SCENES_SINCE = 2): the detector's exact boxes of a
    version-2 dataset are the same scenes, so it may train on either; version 1's lighting
    differs and a newer one is unknown."""
    data = json.loads((tiny_synth / "dataset.json").read_text())
    data["synth"]["version"] = version
    (tmp_path / "dataset.json").write_text(json.dumps(data))
    if accepted:
        assert open_synth(tmp_path).spec.seed == data["synth"]["seed"]
    else:
        with pytest.raises(TruthError, match="renders the scenes of versions 2-3"):
            open_synth(tmp_path)
