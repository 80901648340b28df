"""Key-frame labels and detector-style boxes of a scene, as AVA rows.

Labels (one row per label, boxes normalised to [0, 1], in the frame's camera position):
- everyone visible (walkers: at least MIN_VISIBLE of their box inside the frame) gets exactly
  one pose label;
- a person at a station also gets the object label of their own object, the person label of
  their partner's pose (or alone), the lamp label when their lamp flashes at the key frame
  (its own second, as AVA labels every second), and 0-2 temporal labels: "after" when their
  last lamp flash was 3-4 s before, "before" when the next is 3-4 s after. Temporal labels are
  only given when no flash touches the 64-frame window (both flashes at least 2 s away) and the
  deciding flash lies on an annotated, unexcluded key second (so its person features exist).
Glitched key seconds are excluded timestamps and get no labels.

Detector boxes imitate a real detector: jittered boxes, scores that drop with occlusion,
misses, duplicates and false positives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.data.ava_files import Row
from model.synth.body import (
    Box,
    lamp_flash,
    object_shapes,
    station_pose,
    station_shapes,
    walker_shapes,
)
from model.synth.classes import (
    BALL_CATEGORY,
    BOX_CATEGORY,
    Pose,
    lamp_id,
    object_id,
    person_id,
    pose_id,
    temporal_id,
)
from model.synth.scene import FOOT_HALF, Scene, Station, camera_offset, segment_at

MIN_VISIBLE = 0.6  # walkers cut by the frame edge are labelled once this much is inside
LABEL_LAG = (3, 4)  # a temporal label's flash is this many seconds before or after
CLEAN = 2  # no flash this close (seconds) to a temporally labelled key frame


@dataclass(frozen=True)
class KeyPerson:
    """One visible person at one key second."""

    pid: int
    second: int
    box: Box  # pixels, clipped to the frame
    visible: float  # fraction of the unclipped box inside the frame
    depth: float  # feet line: larger is nearer the camera
    labels: tuple[int, ...]


def _shift(box: Box, dx: int, dy: int) -> Box:
    return box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy


def _clip(box: Box, width: int, height: int) -> tuple[Box, float]:
    x1, y1 = min(max(box[0], 0.0), width), min(max(box[1], 0.0), height)
    x2, y2 = min(max(box[2], 0.0), width), min(max(box[3], 0.0), height)
    area = (box[2] - box[0]) * (box[3] - box[1])
    return (x1, y1, x2, y2), ((x2 - x1) * (y2 - y1) / area if area > 0 else 0.0)


def temporal_labels(scene: Scene, st: Station, second: int) -> list[int]:
    excluded = set(scene.glitches)
    before = [(s, f) for s, f in st.flashes if s <= second]
    after = [(s, f) for s, f in st.flashes if s > second]
    if not before or not after:
        return []
    (prev, prev_flash), (nxt, next_flash) = before[-1], after[0]
    if second - prev < CLEAN or nxt - second < CLEAN:
        return []  # a flash inside (or at the edge of) the window would tell
    keys = scene.key_seconds
    labels = []
    if LABEL_LAG[0] <= second - prev <= LABEL_LAG[1] and prev in keys and prev not in excluded:
        labels.append(temporal_id(prev_flash, past=True))
    if LABEL_LAG[0] <= nxt - second <= LABEL_LAG[1] and nxt in keys and nxt not in excluded:
        labels.append(temporal_id(next_flash, past=False))
    return labels


def station_labels(scene: Scene, st: Station, second: int) -> tuple[int, ...]:
    t = scene.frame_time(scene.key_frame(second))
    pose, _ = station_pose(st, t)
    partner = None
    if st.partner is not None:
        partner, _ = station_pose(scene.stations[st.partner], t)
    mode = segment_at(st.objects, t).value
    flash = lamp_flash(st, t)
    lamp = () if flash is None else (lamp_id(flash),)
    return (pose_id(pose), object_id(mode), person_id(partner), *lamp,
            *temporal_labels(scene, st, second))


def key_people(scene: Scene, second: int) -> list[KeyPerson]:
    """Everyone visible at a key second, with their labels (labels of walkers: walk only)."""
    t = scene.frame_time(scene.key_frame(second))
    dx, dy = camera_offset(scene, t)
    people = []
    for st in scene.stations:
        box, visible = _clip(_shift(station_shapes(st, t)[1], dx, dy), scene.width, scene.height)
        people.append(KeyPerson(st.pid, second, box, visible, st.feet,
                                station_labels(scene, st, second)))
    for w in scene.walkers:
        if not -2 * FOOT_HALF * w.k < w.x(t) < scene.width + 2 * FOOT_HALF * w.k:
            continue
        box, visible = _clip(_shift(walker_shapes(w, t)[1], dx, dy), scene.width, scene.height)
        if visible >= MIN_VISIBLE:
            people.append(KeyPerson(w.pid, second, box, visible, w.feet, (pose_id(Pose.WALK),)))
    return people


def key_objects(scene: Scene, second: int) -> list[tuple[Box, int]]:
    """(box in pixels, category) of every station's object at a key second."""
    t = scene.frame_time(scene.key_frame(second))
    dx, dy = camera_offset(scene, t)
    objects = []
    for st in scene.stations:
        _, box, category = object_shapes(st, t)
        clipped, visible = _clip(_shift(box, dx, dy), scene.width, scene.height)
        if visible > 0:
            objects.append((clipped, category))
    return objects


def _norm(box: Box, scene: Scene) -> tuple[float, float, float, float]:
    w, h = scene.width, scene.height
    return (round(box[0] / w, 4), round(box[1] / h, 4), round(box[2] / w, 4),
            round(box[3] / h, 4))


def annotation_rows(scene: Scene) -> list[Row]:
    rows = []
    excluded = set(scene.glitches)
    for second in scene.key_seconds:
        if second in excluded:
            continue
        for person in key_people(scene, second):
            box = _norm(person.box, scene)
            rows += [Row(scene.video_id, second, box, label, float(person.pid))
                     for label in sorted(person.labels)]
    return rows


def _occlusion(person: KeyPerson, others: list[KeyPerson], posts: list[Box]) -> float:
    """Rough fraction of a box covered by nearer people's boxes and posts."""
    x1, y1, x2, y2 = person.box
    area = max((x2 - x1) * (y2 - y1), 1e-6)
    covered = 0.0
    nearer = [o.box for o in others if o.depth > person.depth] + posts
    for ox1, oy1, ox2, oy2 in nearer:
        covered += max(0.0, min(x2, ox2) - max(x1, ox1)) * max(0.0, min(y2, oy2) - max(y1, oy1))
    return min(covered / area, 1.0)


def _jitter(rng: np.random.Generator, box: Box, sigma: float, scene: Scene) -> Box:
    w, h = box[2] - box[0], box[3] - box[1]
    n = rng.normal(0.0, sigma, 4) * np.array([w, h, w, h])
    x1, x2 = sorted((box[0] + n[0], box[2] + n[2]))
    y1, y2 = sorted((box[1] + n[1], box[3] + n[3]))
    return _clip((x1, y1, x2, y2), scene.width, scene.height)[0]


def _score(rng: np.random.Generator, logit: float) -> float:
    return round(float(1 / (1 + np.exp(-(logit + rng.normal(0.0, 0.8))))), 3)


def _random_box(rng: np.random.Generator, scene: Scene, tall: bool) -> Box:
    h = scene.height * float(rng.uniform(0.2, 0.45) if tall else rng.uniform(0.05, 0.12))
    w = h * float(rng.uniform(0.3, 0.5) if tall else rng.uniform(0.8, 1.25))
    x, y = float(rng.uniform(0, scene.width - w)), float(rng.uniform(0.2, 1.0)) * scene.height
    return _clip((x, y - h, x + w, y), scene.width, scene.height)[0]


def _person_detections(rng: np.random.Generator, scene: Scene, second: int) -> list[Row]:
    people = key_people(scene, second)
    posts = [(x, top, x + w, float(scene.height)) for x, w, top in scene.posts]
    rows = []
    for person in people:
        hidden = max(_occlusion(person, people, posts), 1.0 - person.visible)
        if rng.random() < 0.04 + 0.5 * hidden:
            continue  # missed
        for copy in range(1 + int(rng.random() < 0.05)):  # now and then a duplicate
            box = _jitter(rng, person.box, 0.04 * (1 + 2 * copy), scene)
            score = _score(rng, 3.0 - 4.0 * hidden - 2.0 * copy)
            rows.append(Row(scene.video_id, second, _norm(box, scene), None, score))
    for _ in range(int(rng.poisson(0.4))):
        box = _random_box(rng, scene, tall=True)
        rows.append(Row(scene.video_id, second, _norm(box, scene), None, _score(rng, -1.5)))
    return rows


def _object_detections(rng: np.random.Generator, scene: Scene, second: int) -> list[Row]:
    rows = []
    for box, category in key_objects(scene, second):
        if rng.random() < 0.1:
            continue
        if rng.random() < 0.05:
            category = BALL_CATEGORY if category == BOX_CATEGORY else BOX_CATEGORY
        box = _jitter(rng, box, 0.06, scene)
        rows.append(Row(scene.video_id, second, _norm(box, scene), category, _score(rng, 2.5)))
    for _ in range(int(rng.poisson(0.3))):
        box = _random_box(rng, scene, tall=False)
        category = int(rng.choice([BOX_CATEGORY, BALL_CATEGORY]))
        rows.append(Row(scene.video_id, second, _norm(box, scene), category, _score(rng, -1.0)))
    return rows


def detection_rows(scene: Scene, seed: np.random.SeedSequence) -> tuple[list[Row], list[Row]]:
    """(person boxes, object boxes) of every key second, excluded ones included, as a
    detector would give them."""
    rng = np.random.default_rng(seed)
    persons, objects = [], []
    for second in scene.key_seconds:
        persons += _person_detections(rng, scene, second)
        objects += _object_detections(rng, scene, second)
    return persons, objects
