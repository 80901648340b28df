"""`aia synth` end to end on small sets: the dataset directory contract, determinism, labels."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import av
import numpy as np
import pytest

from cli.main import main
from model.data.ava_files import read_exclusions, read_label_map, read_rows
from model.data.layout import load_layout
from model.synth.classes import CLASSES, NUM_CLASSES, OBJECT_CATEGORIES, Family, family_ids
from model.synth.video import read_video

SMALL = ["--videos", "2", "--seconds", "8", "--size", "96x64", "--split-val", "0.5",
         "--workers", "1", "--quiet"]


def synth(out: Path, *extra: str, seed: int = 3) -> int:
    return main(["synth", "--out", str(out), "--seed", str(seed), *SMALL, *extra])


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "a"
    assert synth(out) == 0
    return out


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "b"
    assert synth(out) == 0
    return out


def csv_files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*.csv"))


def test_writes_every_file_of_the_contract(small: Path) -> None:
    spec = json.loads((small / "dataset.json").read_text())
    assert spec["format"] == "aia-ava/1"
    assert spec["fps"] == 25.0
    assert spec["codec"] in ("h264", "mpeg4")
    assert spec["object_categories"] == {str(k): v for k, v in OBJECT_CATEGORIES.items()}
    layout = load_layout(small)  # the loader's own reader accepts it
    assert sorted(layout.splits) == ["train", "val"]
    videos = layout.video_paths()
    assert sorted(videos) == ["synth_0000", "synth_0001"]
    for split in layout.splits.values():
        for path in (split.annotations, split.exclusions, split.person_boxes, split.object_boxes):
            assert path is not None
            assert path.is_file(), path
    assert read_label_map(layout.label_map) == {c.id: c.name for c in CLASSES}
    assert len(CLASSES) == NUM_CLASSES == 20
    with open(small / "labels.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [int(r["id"]) for r in table] == list(range(1, NUM_CLASSES + 1))
    assert [r["group"] for r in table] == [c.family.value for c in CLASSES]
    assert all(r["evaluated"] == "1" and ":" in r["decided_by"] for r in table)
    for path in videos.values():
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert (stream.width, stream.height) == (96, 64)
            assert stream.codec_context.name == spec["codec"]
            assert sum(1 for _ in container.decode(stream)) == 8 * 25


def test_rows_parse_and_cover_the_key_frames(small: Path) -> None:
    layout = load_layout(small)
    seen: dict[str, set[str]] = defaultdict(set)
    for name, files in layout.splits.items():
        truth = read_rows(files.annotations, "person_id")
        persons = read_rows(files.person_boxes, "score", require_action=False)
        objects = read_rows(files.object_boxes, "score")
        excluded = read_exclusions(files.exclusions)
        assert truth
        assert persons
        assert objects
        assert {r.timestamp for r in truth} <= set(range(2, 7))  # seconds 2..8-2
        assert not {(r.video_id, r.timestamp) for r in truth} & excluded
        assert all(r.action_id is None and 0 < r.value <= 1 for r in persons)
        assert {r.action_id for r in objects} <= set(OBJECT_CATEGORIES)
        assert all(r.value is not None and r.value == int(r.value) for r in truth)
        seen[name] = {r.video_id for r in truth}
        counted = json.loads((small / "dataset.json").read_text())["synth"]["label_counts"][name]
        assert counted == {str(c.id): sum(r.action_id == c.id for r in truth) for c in CLASSES}
    assert seen["train"]
    assert seen["val"]
    assert not seen["train"] & seen["val"]


def test_every_labelled_person_has_exactly_one_pose(small: Path) -> None:
    pose = set(family_ids(Family.POSE))
    labels: dict[tuple[str, int, float | None], list[int]] = defaultdict(list)
    for split in ("train", "val"):
        for r in read_rows(small / "annotations" / f"{split}.csv", "person_id"):
            labels[(r.video_id, r.timestamp, r.value)].append(r.action_id)
    assert len(labels) > 20
    for key, ids in labels.items():
        assert sum(i in pose for i in ids) == 1, (key, ids)
        assert len(ids) == len(set(ids)), (key, ids)  # one row per label
        families = [CLASSES[i - 1].family for i in ids]
        assert families == sorted(families, key=list(Family).index)  # ids contiguous per family


def test_same_seed_same_data(small: Path, twin: Path) -> None:
    files = csv_files(small)
    assert files == csv_files(twin)
    assert len(files) == 9  # labels.csv + 4 per split
    for rel in files:
        assert (small / rel).read_bytes() == (twin / rel).read_bytes(), rel
    assert (small / "labels.pbtxt").read_bytes() == (twin / "labels.pbtxt").read_bytes()
    for name in ("synth_0000", "synth_0001"):
        a = read_video(small / "videos" / f"{name}.mp4")
        b = read_video(twin / "videos" / f"{name}.mp4")
        assert a.shape == b.shape
        assert np.array_equal(a, b), name


def test_a_different_seed_differs(small: Path, tmp_path: Path) -> None:
    assert synth(tmp_path / "c", seed=4) == 0
    for split in ("train", "val"):
        assert ((small / "annotations" / f"{split}.csv").read_bytes()
                != (tmp_path / "c" / "annotations" / f"{split}.csv").read_bytes())
    a = read_video(small / "videos" / "synth_0000.mp4")
    b = read_video(tmp_path / "c" / "videos" / "synth_0000.mp4")
    assert np.abs(a.astype(int) - b).mean() > 5


def test_mpeg4_fallback_is_recorded(tmp_path: Path) -> None:
    assert synth(tmp_path, "--codec", "mpeg4", "--videos", "1", "--split-val", "0") == 0
    spec = json.loads((tmp_path / "dataset.json").read_text())
    assert spec["codec"] == "mpeg4"
    assert list(spec["splits"]) == ["train"]
    with av.open(str(tmp_path / "videos" / "synth_0000.mp4")) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"
    assert read_video(tmp_path / "videos" / "synth_0000.mp4").shape == (200, 64, 96, 3)


@pytest.mark.parametrize(("extra", "message"), [
    (["--size", "97x64"], "must be even"),
    (["--size", "64x96"], "landscape"),
    (["--seconds", "4"], "--seconds 4"),
    (["--split-val", "1"], "--split-val"),
    (["--videos", "0"], "--videos 0"),
])
def test_bad_settings_get_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        extra: list[str], message: str) -> None:
    assert synth(tmp_path / "d", *extra) == 2
    err = capsys.readouterr().err
    assert "aia synth: error:" in err
    assert message in err
    assert not (tmp_path / "d" / "dataset.json").exists()


def test_refuses_a_non_empty_directory_unless_overwrite(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    assert synth(tmp_path, "--videos", "1") == 2
    assert "--overwrite" in capsys.readouterr().err
    assert synth(tmp_path, "--videos", "1", "--split-val", "0", "--seconds", "5") == 2
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "synth_0009.mp4").write_bytes(b"old")
    assert synth(tmp_path, "--videos", "1", "--split-val", "0", "--seconds", "5",
                 "--overwrite") == 0
    assert (tmp_path / "notes.txt").read_text() == "keep me"  # only its own files are replaced
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == ["synth_0000.mp4"]


def test_size_must_look_like_wxh(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        synth(tmp_path, "--size", "big")
    assert "expected WIDTHxHEIGHT" in capsys.readouterr().err
