"""The dataset: persons per key frame (ground truth / detector), objects, flip, determinism,
and the errors and skips on bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from model.config import ModelConfig
from model.data.ava_files import AvaFormatError, Row, write_exclusions, write_rows
from model.data.dataset import (
    AvaDataset,
    PersonSource,
    SkippedVideoWarning,
    eval_options,
    train_options,
)
from model.data.layout import DatasetError
from model.data.records import Sample, Skipped
from model.data.toy import actions, object_box, person_box
from model.data.transforms import Augment, to_pixels

from .conftest import NUM_CLASSES

NO_AUG = Augment.off()


def sample_at(ds: AvaDataset, video: str, second: int, epoch: int = 0) -> Sample:
    item = ds[(epoch, ds.keys.index((video, second)))]
    assert isinstance(item, Sample)
    return item


def multi_hot(ids: tuple[int, ...]) -> list[float]:
    return [1.0 if a + 1 in ids else 0.0 for a in range(NUM_CLASSES)]


@pytest.mark.parametrize(("video", "count"), [("one", 1), ("portrait", 2), ("three", 3)])
def test_ground_truth_persons(toy_root: Path, small_cfg: ModelConfig, video: str, count: int):
    ds = AvaDataset(toy_root, "train", small_cfg, train_options(augment=NO_AUG))
    s = sample_at(ds, video, 1)
    height, width = s.clip.shape[1:3]
    expected = to_pixels(np.array([person_box(p) for p in range(count)]), width, height)
    np.testing.assert_allclose(s.person_boxes, expected, rtol=1e-5)
    assert s.targets.tolist() == [multi_hot(actions(p, 1, NUM_CLASSES)) for p in range(count)]
    assert s.person_ids.tolist() == list(range(count))
    assert s.person_scores.tolist() == [1.0] * count


@pytest.mark.parametrize(
    ("video", "threshold", "count"),
    [("weak", 0.8, 0), ("one", 0.8, 1), ("three", 0.8, 3), ("weak", 0.4, 1)],
)
def test_detected_persons(toy_root: Path, small_cfg: ModelConfig, video: str, threshold: float,
                          count: int):
    ds = AvaDataset(toy_root, "val", small_cfg, eval_options(person_threshold=threshold))
    s = sample_at(ds, video, 1)
    assert s.person_boxes.shape == (count, 4)
    assert s.targets.shape == (count, NUM_CLASSES)
    assert np.all(s.person_scores >= threshold)  # the 0.3 false detection never passes
    assert s.person_ids.tolist() == [-1] * count
    # detections on the true boxes take the true labels (IoU match)
    assert s.targets.tolist() == [multi_hot(actions(p, 1, NUM_CLASSES)) for p in range(count)]


def test_persons_are_capped(toy_root: Path, small_cfg: ModelConfig):
    cfg = small_cfg.replace(ia={"max_persons": 2})
    ds = AvaDataset(toy_root, "train", cfg, train_options(augment=NO_AUG))
    picks = {tuple(sample_at(ds, "three", 1, epoch).person_ids.tolist()) for epoch in range(12)}
    assert all(len(p) == 2 for p in picks)
    assert len(picks) > 1  # training draws a different subset across epochs
    det = AvaDataset(toy_root, "val", cfg, eval_options())
    assert len(sample_at(det, "three", 1).person_boxes) == 2


@pytest.mark.parametrize(
    ("max_objects", "threshold", "expected"),
    [(5, 0.5, [0, 1, 2]), (2, 0.5, [0, 1]), (5, 0.8, [0, 1]), (5, 0.99, [])],
)
def test_objects_top_k_by_score(toy_root: Path, small_cfg: ModelConfig, max_objects: int,
                                threshold: float, expected: list[int]):
    options = eval_options(max_objects=max_objects, object_threshold=threshold)
    s = sample_at(AvaDataset(toy_root, "val", small_cfg, options), "three", 2)
    height, width = s.clip.shape[1:3]
    boxes = to_pixels(np.array([object_box(p) for p in expected]).reshape(-1, 4), width, height)
    np.testing.assert_allclose(s.object_boxes, boxes, rtol=1e-5)
    np.testing.assert_allclose(s.object_scores, [0.95 - 0.1 * p for p in expected], rtol=1e-5)
    assert s.object_categories.tolist() == [p % 2 + 1 for p in expected]


def _inner(box: np.ndarray, y_from: float = 0.0) -> tuple[slice, slice]:
    """Pixels well inside a box (its lower part from `y_from` of its height)."""
    x1, y1, x2, y2 = box
    top = y1 + y_from * (y2 - y1)
    return slice(math.ceil(top) + 1, math.floor(y2) - 1), slice(math.ceil(x1) + 1,
                                                                  math.floor(x2) - 1)


def test_flip_moves_persons_and_objects_with_the_clip(toy_root: Path, small_cfg: ModelConfig):
    plain = AvaDataset(toy_root, "train", small_cfg, train_options(augment=NO_AUG))
    flip = AvaDataset(toy_root, "train", small_cfg,
                      train_options(augment=Augment(0.0, 1.0, 0.0, 0.0, 0.0)))
    a, b = sample_at(plain, "three", 1), sample_at(flip, "three", 1)
    assert b.meta.flipped
    assert not a.meta.flipped
    np.testing.assert_array_equal(b.clip, a.clip[:, :, ::-1])
    width = a.clip.shape[2]
    for before, after in ((a.person_boxes, b.person_boxes), (a.object_boxes, b.object_boxes)):
        np.testing.assert_allclose(after[:, [0, 2]], width - before[:, [2, 0]], rtol=1e-6)
        np.testing.assert_allclose(after[:, [1, 3]], before[:, [1, 3]])
    key = b.clip[b.clip.shape[0] // 2].astype(int)
    for box in b.person_boxes:  # below the objects, the person is red
        rows, cols = _inner(box, y_from=0.4)
        assert key[rows, cols, 0].mean() > 180
        assert key[rows, cols, 1].mean() < 80
    for box in b.object_boxes:
        rows, cols = _inner(box)
        assert key[rows, cols, 1].mean() > 180
        assert key[rows, cols, 0].mean() < 80
    assert not np.allclose(a.person_boxes, b.person_boxes)  # the persons are not symmetric


def test_augmentation_depends_on_seed_epoch_index(toy_root: Path, small_cfg: ModelConfig):
    ds = AvaDataset(toy_root, "train", small_cfg, train_options())
    a, b = sample_at(ds, "three", 1, epoch=3), sample_at(ds, "three", 1, epoch=3)
    np.testing.assert_array_equal(a.clip, b.clip)
    np.testing.assert_array_equal(a.person_boxes, b.person_boxes)
    c = sample_at(ds, "three", 1, epoch=4)
    assert not np.array_equal(a.person_boxes, c.person_boxes)
    other_seed = AvaDataset(toy_root, "train", small_cfg, train_options(seed=1))
    assert not np.array_equal(a.person_boxes, sample_at(other_seed, "three", 1, 3).person_boxes)


def test_exclusions_are_left_out(toy_copy: Path, small_cfg: ModelConfig):
    write_exclusions(toy_copy / "annotations" / "train_excluded.csv", [("one", 2)])
    ds = AvaDataset(toy_copy, "train", small_cfg)
    assert ("one", 2) not in ds.keys
    assert ("one", 1) in ds.keys


def _append(path: Path, rows: list[Row], value: str) -> int:
    """Append rows to an AVA CSV; returns the line number of the first one."""
    lines = path.read_text().splitlines()
    extra = path.with_suffix(".extra")
    write_rows(extra, rows, value)  # type: ignore[arg-type]
    path.write_text("\n".join(lines) + "\n" + extra.read_text())
    return len(lines) + 1


def test_unknown_label_id_names_file_and_line(toy_copy: Path, small_cfg: ModelConfig):
    annotations = toy_copy / "annotations" / "train.csv"
    line = _append(annotations, [Row("one", 1, (0.1, 0.1, 0.2, 0.2), 9, 0.0)], "person_id")
    with pytest.raises(AvaFormatError, match=rf"train\.csv:{line}: action_id 9 .*labels\.pbtxt"):
        AvaDataset(toy_copy, "train", small_cfg)


def test_unknown_object_category_names_file(toy_copy: Path, small_cfg: ModelConfig):
    objects = toy_copy / "boxes" / "train_objects.csv"
    line = _append(objects, [Row("one", 1, (0.1, 0.1, 0.2, 0.2), 7, 0.9)], "score")
    with pytest.raises(AvaFormatError, match=rf"train_objects\.csv:{line}: category_id 7"):
        AvaDataset(toy_copy, "train", small_cfg)


@pytest.mark.parametrize(("content", "message"), [(None, "not found"), ("", "has no rows"),
                                                   ("\n\n", "has no rows")])
def test_missing_or_empty_annotations(toy_copy: Path, small_cfg: ModelConfig,
                                      content: str | None, message: str):
    annotations = toy_copy / "annotations" / "train.csv"
    if content is None:
        annotations.unlink()
    else:
        annotations.write_text(content)
    with pytest.raises(DatasetError, match=rf"train\.csv: annotation file {message}"):
        AvaDataset(toy_copy, "train", small_cfg)


def test_label_map_ids_must_be_contiguous(toy_copy: Path, small_cfg: ModelConfig):
    (toy_copy / "labels.pbtxt").write_text('item { name: "a" id: 1 }\nitem { name: "b" id: 3 }')
    with pytest.raises(DatasetError, match=r"labels\.pbtxt: label ids must be 1\.\.2"):
        AvaDataset(toy_copy, "train", small_cfg)


@pytest.mark.parametrize(
    ("change", "message"),
    [({"format": "other"}, "format 'other'"),
     ({"splits": {}}, "'splits' must name at least one split"),
     ({"label_map": None}, "missing 'label_map'")],
)
def test_bad_dataset_json_names_it(toy_copy: Path, small_cfg: ModelConfig, change: dict,
                                   message: str):
    path = toy_copy / "dataset.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(DatasetError, match=rf"dataset\.json: {message}"):
        AvaDataset(toy_copy, "train", small_cfg)


def test_detected_persons_need_a_box_file(toy_copy: Path, small_cfg: ModelConfig):
    path = toy_copy / "dataset.json"
    data = json.loads(path.read_text())
    data["splits"]["val"]["person_boxes"] = None
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"dataset\.json: split 'val' has no person_boxes"):
        AvaDataset(toy_copy, "val", small_cfg, eval_options())
    ds = AvaDataset(toy_copy, "val", small_cfg, train_options())
    assert ds.options.persons is PersonSource.GROUND_TRUTH


@pytest.mark.parametrize("damage", ["missing", "garbage"])
def test_bad_video_is_skipped_up_front(toy_copy: Path, small_cfg: ModelConfig, damage: str):
    video = toy_copy / "videos" / "portrait.mp4"
    if damage == "missing":
        video.unlink()
    else:
        video.write_bytes(b"\x00" * 4096)
    with pytest.warns(SkippedVideoWarning, match="skipping video portrait"):
        ds = AvaDataset(toy_copy, "train", small_cfg)
    assert [s.video_id for s in ds.skipped] == ["portrait"]
    assert "portrait" in ds.skipped[0].reason
    assert all(video != "portrait" for video, _ in ds.keys)
    assert isinstance(ds[0], Sample)


def test_undecodable_window_comes_back_as_skipped(toy_copy: Path, small_cfg: ModelConfig):
    (toy_copy / "videos" / "portrait.mp4").write_bytes(b"\x00" * 4096)
    _append(toy_copy / "annotations" / "train.csv",
            [Row("one", 30, (0.1, 0.1, 0.2, 0.2), 1, 0.0)], "person_id")
    ds = AvaDataset(toy_copy, "train", small_cfg, train_options(probe_videos=False))
    for key, reason in ((("portrait", 0), r"portrait\.mp4"),
                        (("one", 30), r"one\.mp4: key frame at 30 s is past the last frame")):
        with pytest.warns(SkippedVideoWarning, match=reason):
            item = ds[ds.keys.index(key)]
        assert isinstance(item, Skipped)
        assert (item.video_id, item.timestamp) == key


def test_validation_and_the_service_pool_the_same_person_boxes(toy_root: Path,
                                                               small_cfg: ModelConfig) -> None:
    """One test-time box rule: what validation (and held-out scoring, which validates the
    exported graphs) hands graph 1 is what the service hands it for the same detections."""
    from exporters.artifact import InputSpec
    from service.detection import Frames, roi_boxes

    ds = AvaDataset(toy_root, "val", small_cfg, eval_options(person_threshold=0.0))
    spec = InputSpec.from_config(small_cfg)
    for video in ("three", "portrait"):
        s = sample_at(ds, video, 1)
        height, width = s.clip.shape[1:3]
        frames = Frames(np.zeros(1), [s.person_boxes_norm], [s.person_scores],
                        [np.zeros((0, 4), np.float32)])
        served, persons = roi_boxes(frames, [0], (width, height), spec)
        assert persons == len(s.person_boxes) > 0
        np.testing.assert_array_equal(served[:persons, 1:], s.person_boxes)
        plain = to_pixels(s.person_boxes_norm, width, height)
        # enlarged as the reference tests (10% wider, 5% taller), never the raw detector box
        widths = np.minimum(plain[:, 2] + 0.05 * (plain[:, 2] - plain[:, 0]), width) - \
            np.maximum(plain[:, 0] - 0.05 * (plain[:, 2] - plain[:, 0]), 0)
        np.testing.assert_allclose(s.person_boxes[:, 2] - s.person_boxes[:, 0], widths,
                                   rtol=1e-5)
        assert not np.allclose(s.person_boxes, plain)
