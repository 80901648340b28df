"""Scene grammar: who is where, doing what, and when, for one synthetic video.

```
scene     := background lighting camera-shake posts* glitch* row{2} walker*
row       := station-block+            (back row: small, far; front row: large, near)
block     := pair | single             (each row a pair; one random row also a single)
pair      := [box] person -> <- person [box]   partners face each other, boxes on the outside
single    := person [box]                       the box on the side facing the rest of the row
person    := look facing pose-timeline object-timeline flash-timeline
pose-timeline   := (2-4 s of stand | crouch | jump | wave)+        uniform, independent
object-timeline := (2 s of push | pull | still | ball)+            box near->far->near ...
flash-timeline  := lamp flash (red | green) every 6 s              independent colours
walker    := look, crosses the scene at mid depth (pose walk); enters and leaves
```
Geometry is in body units k (a standing person is 44 k tall; k = frame height / 128 times the
row's depth scale). Every pose keeps a person within FOOT_HALF of their centre line, partners
and objects keep at least PAIR_GAP / NEAR_GAP beyond that, and the camera shakes by less than
SHAKE_PX, so nothing that decides an object or person label ever enters the labelled person's
box during the 64-frame (2.56 s) window. Every timeline starts at a random phase, so early and
late seconds look alike (labels decided 3 s later or earlier cannot lean on the clock).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from model.synth.classes import STATION_POSES, Flash, ObjectMode

RGB = tuple[int, int, int]

FOOT_HALF = 9.0  # every pose stays within +-FOOT_HALF k of the centre line
PAIR_GAP = 10.0  # between partners' footprints
NEAR_GAP, FAR_GAP = 8.0, 24.0  # a box's gap to its owner's footprint at the near/far end
BOX_W, BOX_H = 10.0, 11.0
BALL_R, BALL_GAP = 4.5, 10.0
OBJECT_REACH = FAR_GAP + BOX_W  # how far a person's object reaches beyond the footprint
STATION_SEP = 6.0  # between neighbouring stations' outermost objects: own object stays nearest
ROWS = ((72 / 128, 0.8), (120 / 128, 1.0))  # (feet line / frame height, depth scale)
WALK_FEET, WALK_DEPTH = 96 / 128, 0.9
WALK_SPEED = 30.0  # k per second
WALKER_SHARE = 0.2  # walkers among labelled people: walk gets the share of each station pose
SHAKE_PX = 1.5  # camera shake amplitude per axis at height 128 (scaled with the frame)

POSE_SECONDS = (2, 3, 4)
OBJECT_SECONDS = 2  # push/pull move the box NEAR->FAR (or back) in one segment
FLASH_EVERY = 6  # seconds between a person's lamp flashes; labels at 3-4 s, windows stay clean
FLASH_HALF = 0.4  # a flash lasts 0.8 s around its integer second
KEY_MARGIN = 2  # key frames at seconds KEY_MARGIN..seconds-KEY_MARGIN (64-frame windows fit)
GLITCH_RATE = 0.03  # key seconds whose frames break up; listed as excluded timestamps
MIN_SECONDS = 2 * KEY_MARGIN + 1

SHIRTS: tuple[RGB, ...] = (
    (200, 120, 40), (60, 90, 170), (150, 60, 150), (230, 200, 60), (40, 140, 140),
    (200, 200, 200), (90, 60, 40), (230, 130, 170), (30, 40, 80), (130, 160, 60),
    (110, 110, 110), (240, 240, 220), (170, 80, 60), (90, 170, 220),
)
TROUSERS: tuple[RGB, ...] = (
    (40, 40, 50), (70, 70, 110), (100, 80, 60), (30, 60, 40), (150, 150, 160), (60, 30, 30),
)
HAIR: tuple[RGB, ...] = ((20, 15, 10), (90, 60, 30), (200, 170, 90), (140, 140, 140))
SKIN: tuple[RGB, ...] = ((240, 200, 170), (200, 150, 110), (150, 100, 70), (100, 70, 50))


@dataclass(frozen=True)
class Look:
    """Identity: clothing colours stay the same all video, so people can be matched in time."""

    shirt: RGB
    trousers: RGB
    hair: RGB
    skin: RGB


@dataclass(frozen=True)
class Segment:
    start: float  # seconds, inclusive
    end: float  # exclusive
    value: int  # a Pose or ObjectMode
    near: bool = True  # object segments: the box starts at NEAR_GAP (else FAR_GAP)
    phase: float = 0.0  # seconds into a periodic motion (hop, wave) at `start`


@dataclass(frozen=True)
class Station:
    """A person who stays at one place all video, with a box or ball and a lamp."""

    pid: int
    look: Look
    x: float  # centre line, world pixels
    feet: float  # ground line, world pixels
    k: float  # body unit, pixels
    facing: int  # +1 right, -1 left
    partner: int | None  # pid of the partner, None if alone
    object_side: int  # +1: own object on the right
    poses: tuple[Segment, ...]
    objects: tuple[Segment, ...]
    flashes: tuple[tuple[int, Flash], ...]  # (second, colour), sorted; some outside the video


@dataclass(frozen=True)
class Walker:
    """A person crossing the scene at constant speed: enters at one edge, leaves at the other."""

    pid: int
    look: Look
    start: float  # time the centre is at x0
    x0: float
    direction: int  # +1: walks right
    speed: float  # pixels per second
    feet: float
    k: float
    phase: float  # seconds into the stride cycle at `start`

    def x(self, t: float) -> float:
        return self.x0 + self.direction * self.speed * (t - self.start)


@dataclass(frozen=True)
class Scene:
    video_id: str
    width: int
    height: int
    fps: float
    seconds: int
    wall: RGB
    floor: RGB
    horizon: float  # wall/floor boundary, pixels
    doors: tuple[tuple[float, float, float, RGB], ...]  # (x, width, top, colour) on the wall
    texture_seed: int
    tint: tuple[float, float, float]
    light: tuple[tuple[float, float, float], ...]  # (amplitude, period s, phase) of the gain
    shake: tuple[tuple[float, float, float], ...]  # (amplitude px, frequency Hz, phase) x4
    posts: tuple[tuple[float, float, float], ...]  # foreground occluders (x, width, top)
    glitches: tuple[int, ...]  # key seconds whose frames break up (excluded)
    stations: tuple[Station, ...]
    walkers: tuple[Walker, ...]

    @property
    def frames(self) -> int:
        return round(self.seconds * self.fps)

    @property
    def key_seconds(self) -> range:
        return range(KEY_MARGIN, self.seconds - KEY_MARGIN + 1)

    @property
    def scale(self) -> float:
        return self.height / 128

    def frame_time(self, index: int) -> float:
        return index / self.fps

    def key_frame(self, second: int) -> int:
        return round(second * self.fps)


def segment_at(segments: tuple[Segment, ...], t: float) -> Segment:
    for seg in segments:
        if seg.start <= t < seg.end:
            return seg
    raise ValueError(f"time {t} is outside the timeline {segments[0].start}..{segments[-1].end}")


def camera_offset(scene: Scene, t: float) -> tuple[int, int]:
    """Integer pixel shift of the world at time t (camera shake)."""
    dx = sum(a * math.sin(2 * math.pi * f * t + p) for a, f, p in scene.shake[:2])
    dy = sum(a * math.sin(2 * math.pi * f * t + p) for a, f, p in scene.shake[2:])
    return round(dx), round(dy)


def light_gain(scene: Scene, t: float) -> float:
    return 1.0 + sum(a * math.sin(2 * math.pi * t / period + p) for a, period, p in scene.light)


def shake_margin(height: int) -> int:
    """Pixels the background extends beyond the frame on each side."""
    return math.ceil(2 * SHAKE_PX * height / 128) + 1


# ---------------------------------------------------------------------------------------------
# sampling


def _look(rng: np.random.Generator, shirt: RGB) -> Look:
    def pick(options: tuple[RGB, ...]) -> RGB:
        return options[int(rng.integers(len(options)))]

    return Look(shirt, pick(TROUSERS), pick(HAIR), pick(SKIN))


def _pose_segments(rng: np.random.Generator, seconds: int) -> tuple[Segment, ...]:
    # Boundaries at half seconds keep each key frame's 16-frame window inside one pose.
    t = -0.5 - float(rng.integers(0, max(POSE_SECONDS)))
    segments = []
    while t < seconds + 1:
        length = float(rng.choice(POSE_SECONDS))
        pose = STATION_POSES[int(rng.integers(len(STATION_POSES)))]
        segments.append(Segment(t, t + length, int(pose), phase=float(rng.uniform(0, 1))))
        t += length
    return tuple(segments)


def _object_segments(rng: np.random.Generator, seconds: int) -> tuple[Segment, ...]:
    # A Markov chain over the box position: from near, push (1/2), still or ball (1/4 each);
    # from far, pull (1/2), still or ball. Both ends are equally likely, so each mode is 1/4.
    t = -0.5 - float(rng.integers(0, OBJECT_SECONDS))
    near = bool(rng.integers(2))
    segments = []
    while t < seconds + 1:
        u = rng.random()
        move = ObjectMode.PUSH if near else ObjectMode.PULL
        mode = move if u < 0.5 else (ObjectMode.STILL if u < 0.75 else ObjectMode.BALL)
        segments.append(Segment(t, t + OBJECT_SECONDS, int(mode), near))
        if mode is move:
            near = not near
        t += OBJECT_SECONDS
    return tuple(segments)


def _flashes(rng: np.random.Generator, seconds: int) -> tuple[tuple[int, Flash], ...]:
    first = int(rng.integers(0, FLASH_EVERY)) - 2 * FLASH_EVERY
    times = range(first, seconds + 2 * FLASH_EVERY, FLASH_EVERY)
    return tuple((t, Flash(int(rng.integers(len(Flash))))) for t in times)


@dataclass(frozen=True)
class _Spot:
    x: float
    facing: int
    object_side: int
    partner_offset: int  # index offset of the partner within the row's spots, 0 if alone


def _block_width(kind: str) -> float:
    if kind == "pair":
        return 2 * OBJECT_REACH + 4 * FOOT_HALF + PAIR_GAP
    return 2 * FOOT_HALF + OBJECT_REACH


def _row_blocks(rng: np.random.Generator, room: float, single: bool) -> list[str]:
    """A pair, plus a single if asked; whatever fits in `room` (in k), in random order."""
    wanted = ["pair", "single"] if single else ["pair"]
    for blocks in (wanted, ["pair"], ["single"]):
        if sum(map(_block_width, blocks)) + STATION_SEP * (len(blocks) - 1) <= room:
            order = list(blocks)
            rng.shuffle(order)
            return order
    return []


def _row_spots(rng: np.random.Generator, width: int, k: float, margin: float,
               single: bool) -> list[_Spot]:
    blocks = _row_blocks(rng, (width - 2 * margin) / k, single)
    used = (sum(map(_block_width, blocks)) + STATION_SEP * (len(blocks) - 1)) * k
    slack = rng.dirichlet(np.ones(len(blocks) + 1)) * (width - 2 * margin - used)
    spots: list[_Spot] = []
    x = margin + slack[0]
    for i, kind in enumerate(blocks):
        if kind == "pair":
            left = x + (OBJECT_REACH + FOOT_HALF) * k
            right = left + (2 * FOOT_HALF + PAIR_GAP) * k
            spots += [_Spot(left, 1, -1, 1), _Spot(right, -1, 1, -1)]
        else:
            # the box goes on the side of the rest of the row, so everyone's nearest box is theirs
            side = (1 if i == 0 else -1) if len(blocks) > 1 else int(rng.choice([-1, 1]))
            centre = x + (FOOT_HALF + (OBJECT_REACH if side < 0 else 0.0)) * k
            spots.append(_Spot(centre, int(rng.choice([-1, 1])), side, 0))
        x += (_block_width(kind) + STATION_SEP) * k + slack[i + 1]
    return spots


def _stations(rng: np.random.Generator, width: int, height: int, seconds: int,
              shirts: list[RGB]) -> list[Station]:
    s = height / 128
    stations: list[Station] = []
    # one single per video, in a random row: 2 pairs + 1 single makes "alone" 1/5 of the
    # people at stations, as often as each partner pose
    single_row = int(rng.integers(len(ROWS)))
    for row, (feet_frac, depth) in enumerate(ROWS):
        k = s * depth
        spots = _row_spots(rng, width, k, shake_margin(height) + 2 * k, row == single_row)
        first = len(stations)
        for i, spot in enumerate(spots):
            partner = first + i + spot.partner_offset if spot.partner_offset else None
            stations.append(Station(
                pid=len(stations), look=_look(rng, shirts[len(stations)]), x=spot.x,
                feet=feet_frac * height, k=k, facing=spot.facing, partner=partner,
                object_side=spot.object_side, poses=_pose_segments(rng, seconds),
                objects=_object_segments(rng, seconds), flashes=_flashes(rng, seconds)))
    return stations


def _walkers(rng: np.random.Generator, width: int, height: int, seconds: int, stations: int,
             shirts: list[RGB]) -> list[Walker]:
    k = height / 128 * WALK_DEPTH
    speed = WALK_SPEED * k
    crossing = (width + 2 * FOOT_HALF * k) / speed
    # Poisson arrivals, from before t=0 so the scene starts mid-stream, at the rate that makes
    # walkers WALKER_SHARE of the labelled people on average (labelled while mostly inside,
    # about width / speed seconds each).
    rate = WALKER_SHARE / (1 - WALKER_SHARE) * max(stations, 1) * speed / width
    count = int(rng.poisson(rate * (seconds + crossing)))
    starts = np.sort(rng.uniform(-crossing, seconds, count))
    walkers = []
    for i, start in enumerate(starts):
        direction = int(rng.choice([-1, 1]))
        x0 = -FOOT_HALF * k if direction > 0 else width + FOOT_HALF * k
        walkers.append(Walker(
            pid=stations + i, look=_look(rng, shirts[stations + i % (len(shirts) - stations)]),
            start=float(start), x0=x0, direction=direction,
            speed=speed * float(rng.uniform(0.85, 1.15)),
            feet=WALK_FEET * height + float(rng.uniform(-3, 3)) * height / 128, k=k,
            phase=float(rng.uniform(0, 1))))
    return walkers


def _muted(rng: np.random.Generator, low: int, high: int) -> RGB:
    base = rng.integers(low, high)
    r, g, b = (int(np.clip(base + rng.integers(-25, 26), 0, 255)) for _ in range(3))
    return r, g, b


def sample_scene(video_id: str, seed: np.random.SeedSequence, width: int, height: int,
                 fps: float, seconds: int) -> Scene:
    """Draw one video's scene; the same seed gives the same scene."""
    rng = np.random.default_rng(seed)
    s = height / 128
    shirts = [SHIRTS[i] for i in rng.permutation(len(SHIRTS))]
    stations = _stations(rng, width, height, seconds, shirts)
    walkers = _walkers(rng, width, height, seconds, len(stations), shirts)
    horizon = height * float(rng.uniform(0.38, 0.46))
    doors = tuple((float(rng.uniform(0, width)), float(rng.uniform(10, 30)) * s,
                   float(rng.uniform(0.08, 0.2)) * height, _muted(rng, 40, 120))
                  for _ in range(int(rng.integers(1, 4))))
    posts = tuple((float(rng.uniform(0, width)), 5.0 * s, height * float(rng.uniform(0.5, 0.7)))
                  for _ in range(int(rng.random() < 0.5)))
    shake = tuple((SHAKE_PX * s * w, float(rng.uniform(0.2, 1.0)), float(rng.uniform(0, 6.3)))
                  for w in (0.6, 0.4, 0.6, 0.4))
    light = ((0.10, float(rng.uniform(10, 25)), float(rng.uniform(0, 6.3))),
             (0.04, float(rng.uniform(3, 7)), float(rng.uniform(0, 6.3))))
    keys = range(KEY_MARGIN, seconds - KEY_MARGIN + 1)
    glitches = tuple(t for t in keys if rng.random() < GLITCH_RATE)
    return Scene(
        video_id=video_id, width=width, height=height, fps=fps, seconds=seconds,
        wall=_muted(rng, 120, 200), floor=_muted(rng, 70, 140), horizon=horizon, doors=doors,
        texture_seed=int(rng.integers(2**31)),
        tint=tuple(float(v) for v in rng.uniform(0.92, 1.08, 3)),  # type: ignore[arg-type]
        light=light, shake=shake, posts=posts, glitches=glitches,
        stations=tuple(stations), walkers=tuple(walkers))
