"""The scene grammar's promises, checked on the geometry (no pixels): what decides a label stays
outside the labelled person's box for the whole 64-frame window, labels follow their rule, and
the families are balanced."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from model.synth.annotate import (
    annotation_rows,
    detection_rows,
    key_objects,
    key_people,
    temporal_labels,
)
from model.synth.body import lamp_flash, object_shapes, station_pose, station_shapes, union
from model.synth.classes import (
    CLASSES,
    STATION_POSES,
    Family,
    ObjectMode,
    Pose,
    family_ids,
    family_of,
    lamp_id,
    object_id,
    person_id,
    pose_id,
    temporal_id,
)
from model.synth.scene import Scene, camera_offset, sample_scene, segment_at

HALF_WINDOW = 32  # frames each side: the reference preset's 64-frame clip
FAMILIES = list(Family)


def scenes(count: int, seconds: int = 30, seed: int = 11,
           size: tuple[int, int] = (192, 128)) -> list[Scene]:
    return [sample_scene(f"v{i}", np.random.SeedSequence([seed, i]), *size, 25.0, seconds)
            for i in range(count)]


def enlarged(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """The box as the model pools it at test time (10% wider, 5% taller), plus a pixel."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    return x1 - 0.05 * w - 1, y1 - 0.025 * h - 1, x2 + 0.05 * w + 1, y2 + 0.025 * h + 1


def overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


@pytest.mark.parametrize("size", [(192, 128), (96, 64), (384, 256)])
def test_deciding_objects_and_partners_stay_out_of_the_box(size: tuple[int, int]) -> None:
    checked = 0
    for scene in scenes(3, seconds=14, size=size):
        for second in scene.key_seconds:
            key = scene.key_frame(second)
            for person in key_people(scene, second):
                if person.pid >= len(scene.stations):
                    continue  # walkers carry only a pose label
                st = scene.stations[person.pid]
                box = enlarged(person.box)
                for index in range(key - HALF_WINDOW, key + HALF_WINDOW, 2):
                    t = scene.frame_time(index)
                    dx, dy = camera_offset(scene, t)
                    deciding = [object_shapes(st, t)[1]]
                    if st.partner is not None:
                        deciding.append(union(station_shapes(scene.stations[st.partner], t)[0]))
                    for x1, y1, x2, y2 in deciding:
                        assert not overlaps(box, (x1 + dx, y1 + dy, x2 + dx, y2 + dy)), (
                            scene.video_id, second, person.pid, t)
                        checked += 1
    assert checked > 5_000


def test_no_flash_in_the_window_of_a_temporal_label() -> None:
    temporal = set(family_ids(Family.TEMPORAL))
    labelled = 0
    for scene in scenes(6):
        for second in scene.key_seconds:
            key = scene.key_frame(second)
            for st in scene.stations:
                if not temporal_labels(scene, st, second):
                    continue
                labelled += 1
                for index in range(key - HALF_WINDOW, key + HALF_WINDOW):
                    assert lamp_flash(st, scene.frame_time(index)) is None
    assert labelled > 100
    assert temporal == set(range(17, 21))


def test_lamp_labels_are_the_flash_at_its_own_second() -> None:
    """A lamp label is given exactly when the lamp flashes at the key frame, and never beside a
    temporal label: a temporal label's own window holds no flash."""
    lamp, temporal = set(family_ids(Family.LAMP)), set(family_ids(Family.TEMPORAL))
    labelled = 0
    for scene in scenes(6):
        for second in scene.key_seconds:
            if second in scene.glitches:
                continue
            for person in key_people(scene, second):
                got = lamp & set(person.labels)
                if person.pid >= len(scene.stations):
                    assert not got
                    continue
                st = scene.stations[person.pid]
                flash = dict(st.flashes).get(second)
                assert flash == lamp_flash(st, scene.frame_time(scene.key_frame(second)))
                assert got == (set() if flash is None else {lamp_id(flash)})
                assert not (got and temporal & set(person.labels))
                labelled += bool(got)
    assert labelled > 100
    assert lamp == {15, 16}


def test_temporal_labels_follow_the_flash_3_to_4_seconds_away() -> None:
    for scene in scenes(4):
        for st in scene.stations:
            for second in scene.key_seconds:
                expected = set()
                near = [(s, f) for s, f in st.flashes if abs(s - second) < 2]
                for s, flash in st.flashes:
                    usable = s in scene.key_seconds and s not in scene.glitches
                    if 3 <= second - s <= 4 and usable and not near:
                        expected.add(temporal_id(flash, past=True))
                    if 3 <= s - second <= 4 and usable and not near:
                        expected.add(temporal_id(flash, past=False))
                assert set(temporal_labels(scene, st, second)) == expected


def test_object_and_person_labels_follow_their_rule() -> None:
    for scene in scenes(3):
        for second in scene.key_seconds:
            if second in scene.glitches:
                continue
            for person in key_people(scene, second):
                if person.pid >= len(scene.stations):
                    assert person.labels == (pose_id(Pose.WALK),)
                    continue
                st = scene.stations[person.pid]
                t = float(second)
                partner = (None if st.partner is None
                           else station_pose(scene.stations[st.partner], t)[0])
                assert st.partner is None or scene.stations[st.partner].partner == st.pid
                mode = ObjectMode(segment_at(st.objects, t).value)
                assert person.labels[:3] == (pose_id(station_pose(st, t)[0]), object_id(mode),
                                            person_id(partner))


def test_families_and_classes_are_balanced() -> None:
    counts: Counter[int] = Counter()
    for scene in scenes(40, seed=5):
        counts.update(r.action_id for r in annotation_rows(scene))
    per_family = {f: sum(counts[i] for i in family_ids(f)) for f in FAMILIES}
    for family in FAMILIES:
        ids = family_ids(family)
        mean = per_family[family] / len(ids)
        assert all(abs(counts[i] - mean) < 0.15 * mean for i in ids), (family, counts)
    pose = per_family[Family.POSE]
    # designed ratios (docs/synthetic.md): walkers carry a pose only, and a temporal label
    # needs a flash 3-4 s away with none within 2 s, at most 4 labels per 6 station seconds
    assert 0.75 * pose < per_family[Family.OBJECT] == per_family[Family.PERSON] < 0.9 * pose
    assert 0.4 * pose < per_family[Family.TEMPORAL] < 0.55 * pose
    # a flash every 6 s of a station person's key seconds (walkers have no lamp)
    assert 0.1 * pose < per_family[Family.LAMP] < 0.17 * pose
    assert [c.id for c in CLASSES] == list(range(1, 21))
    assert [family_of(i) for i in range(1, 21)] == sorted(
        (family_of(i) for i in range(1, 21)), key=FAMILIES.index)


def test_every_station_pose_and_person_class_occurs() -> None:
    rows = [r for scene in scenes(8) for r in annotation_rows(scene)]
    ids = {r.action_id for r in rows}
    assert ids == set(range(1, 21))
    assert {pose_id(p) for p in STATION_POSES} | {pose_id(Pose.WALK)} == set(
        family_ids(Family.POSE))


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter = w * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union_ = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union_ if union_ > 0 else 0.0


def test_detector_boxes_are_noisy_like_a_detector() -> None:
    truth_count = missed = false = low = high = 0
    for scene in scenes(6, seconds=20):
        persons, objects = detection_rows(scene, np.random.SeedSequence([1, 2]))
        truth = {(r.timestamp, r.box) for r in annotation_rows(scene)}
        assert not {(r.timestamp, r.box) for r in persons} & truth  # jittered, never exact
        assert all(r.action_id is None for r in persons)
        assert {r.action_id for r in objects} == {1, 2}
        keys = sum(len(key_objects(scene, s)) for s in scene.key_seconds)
        assert 0.8 * keys < len(objects) < 1.3 * keys
        w, h = scene.width, scene.height
        for second in scene.key_seconds:
            gt = [(b[0] / w, b[1] / h, b[2] / w, b[3] / h)
                  for b in (p.box for p in key_people(scene, second))]
            found = [r for r in persons if r.timestamp == second]
            truth_count += len(gt)
            missed += sum(all(iou(g, r.box) < 0.5 for r in found) for g in gt)
            false += sum(all(iou(g, r.box) < 0.5 for g in gt) for r in found)
            low += sum(r.value < 0.5 for r in found)
            high += sum(r.value > 0.8 for r in found)
    assert 0.03 * truth_count < missed < 0.2 * truth_count
    assert 0.02 * truth_count < false < 0.2 * truth_count
    assert high > 5 * low > 0  # mostly confident, with some low-score boxes
