"""The synthetic label set: five families, ids contiguous per family in the order pose, object,
person, lamp, temporal, so a classifier config has one ClassGroup per family.

Each family is decided by one kind of evidence, and only by it:
- pose: the person's own appearance and motion inside the clip window (one per person);
- object: the person's own object, outside the person's box (its kind, or how it moves);
- person: the person's partner, outside the person's box (the partner's pose), or no partner;
- lamp: the person's own lamp flashing at the key frame (red or green), plain in the box: as
  AVA labels every second, this supervises the person features that memory later holds;
- temporal: the person's lamp flashing 3-4 s before or after the key frame, never inside the
  64-frame window, so only person features of neighbouring seconds (memory) can tell.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Family(enum.StrEnum):
    POSE = "pose"
    OBJECT = "object"
    PERSON = "person"
    LAMP = "lamp"
    TEMPORAL = "temporal"


class Pose(enum.IntEnum):
    STAND = 0
    WALK = 1  # only people crossing the scene walk; people at a station never do
    CROUCH = 2
    JUMP = 3
    WAVE = 4


# The poses of people at a station, drawn uniformly and independently of everything else.
STATION_POSES: tuple[Pose, ...] = (Pose.STAND, Pose.CROUCH, Pose.JUMP, Pose.WAVE)


class ObjectMode(enum.IntEnum):
    PUSH = 0  # a box slides away from its owner
    PULL = 1  # a box slides towards its owner
    STILL = 2  # a box stays where it is
    BALL = 3  # a ball bounces beside its owner (the box is put away meanwhile)


class Flash(enum.IntEnum):
    RED = 0
    GREEN = 1


@dataclass(frozen=True)
class SynthClass:
    id: int
    name: str
    family: Family
    decided_by: str  # "<interaction>: <cue>", written to labels.csv


def _classes() -> tuple[SynthClass, ...]:
    rows: list[tuple[str, Family, str]] = [
        ("stand", Family.POSE, "self: upright and still"),
        ("walk", Family.POSE, "self: swinging legs while crossing the scene"),
        ("crouch", Family.POSE, "self: bent knees, low body"),
        ("jump", Family.POSE, "self: hops every 0.6 s"),
        ("wave", Family.POSE, "self: front hand above the head, swinging every 0.5 s"),
        ("push (a box)", Family.OBJECT, "object: own box sliding away"),
        ("pull (a box)", Family.OBJECT, "object: own box sliding closer"),
        ("guard (a still box)", Family.OBJECT, "object: own box not moving"),
        ("bounce (a ball)", Family.OBJECT, "object: own ball bouncing"),
        ("accompany (a standing person)", Family.PERSON, "person: partner stands"),
        ("help (a crouching person)", Family.PERSON, "person: partner crouches"),
        ("watch (a jumping person)", Family.PERSON, "person: partner jumps"),
        ("greet (a waving person)", Family.PERSON, "person: partner waves"),
        ("alone", Family.PERSON, "person: no partner"),
        ("lamp lit red", Family.LAMP, "self: own lamp flashes red now"),
        ("lamp lit green", Family.LAMP, "self: own lamp flashes green now"),
        ("lamp flashed red 3-4 s ago", Family.TEMPORAL, "memory-past: own lamp red 3-4 s before"),
        ("lamp flashed green 3-4 s ago", Family.TEMPORAL,
         "memory-past: own lamp green 3-4 s before"),
        ("lamp flashes red in 3-4 s", Family.TEMPORAL, "memory-future: own lamp red 3-4 s after"),
        ("lamp flashes green in 3-4 s", Family.TEMPORAL,
         "memory-future: own lamp green 3-4 s after"),
    ]
    return tuple(SynthClass(i, n, f, d) for i, (n, f, d) in enumerate(rows, start=1))


CLASSES: tuple[SynthClass, ...] = _classes()
NUM_CLASSES = len(CLASSES)
OBJECT_CATEGORIES: dict[int, str] = {1: "box", 2: "ball"}
BOX_CATEGORY, BALL_CATEGORY = 1, 2


def label_names(version: int) -> tuple[str, ...]:
    """The class names a generator version wrote: version 3 added the lamp family, so the
    names of versions 1 and 2 are these without it (their 18-class label sets)."""
    return tuple(c.name for c in CLASSES if version >= 3 or c.family is not Family.LAMP)


_FIRST = {f: min(c.id for c in CLASSES if c.family is f) for f in Family}


def family_ids(family: Family) -> tuple[int, ...]:
    return tuple(c.id for c in CLASSES if c.family is family)


def family_of(class_id: int) -> Family:
    return CLASSES[class_id - 1].family


def pose_id(pose: Pose) -> int:
    return _FIRST[Family.POSE] + int(pose)


def object_id(mode: ObjectMode) -> int:
    return _FIRST[Family.OBJECT] + int(mode)


def person_id(partner_pose: Pose | None) -> int:
    """The person class given the partner's pose (None: no partner)."""
    if partner_pose is None:
        return _FIRST[Family.PERSON] + len(STATION_POSES)
    return _FIRST[Family.PERSON] + STATION_POSES.index(partner_pose)


def lamp_id(flash: Flash) -> int:
    return _FIRST[Family.LAMP] + int(flash)


def temporal_id(flash: Flash, past: bool) -> int:
    return _FIRST[Family.TEMPORAL] + int(flash) + (0 if past else len(Flash))
