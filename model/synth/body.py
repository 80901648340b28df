"""Shapes of people and objects at a time: filled rectangles, ellipses and capsules (thick
lines). Labels' boxes come from the same shapes that are drawn, so they always agree.

Body coordinates (u, v) are in body units k: u along the facing direction (front arm at +u),
v up from the feet (negative is up). Every pose keeps |u| <= FOOT_HALF.
"""

from __future__ import annotations

import enum
import math
from typing import NamedTuple

from model.synth.classes import Flash, ObjectMode, Pose
from model.synth.scene import (
    BALL_GAP,
    BALL_R,
    BOX_H,
    BOX_W,
    FAR_GAP,
    FLASH_HALF,
    FOOT_HALF,
    NEAR_GAP,
    RGB,
    Look,
    Segment,
    Station,
    Walker,
    segment_at,
)

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels

EYE: RGB = (25, 25, 30)
LAMP: RGB = (150, 150, 140)
LAMP_LIT: RGB = (255, 255, 225)
GLOW: dict[Flash, RGB] = {Flash.RED: (255, 40, 40), Flash.GREEN: (40, 255, 60)}
CRATE: RGB = (165, 105, 50)
CRATE_BAND: RGB = (115, 70, 30)
BALL: RGB = (250, 185, 30)

GLOW_R = 7.0  # a flash lights up much of the body: plain in the person's own features
HOP_PERIOD, HOP_HEIGHT = 0.6, 6.0  # jump
WAVE_PERIOD = 0.5
STRIDE_PERIOD = 0.7  # walk
BOUNCE_PERIOD, BOUNCE_HEIGHT = 0.7, 12.0  # ball


class Kind(enum.IntEnum):
    RECT = 0  # (x0, y0)-(x1, y1) corners
    ELLIPSE = 1  # centre (x0, y0), radii (x1, y1)
    CAPSULE = 2  # segment (x0, y0)-(x1, y1), radius r


class Shape(NamedTuple):  # a NamedTuple: hundreds of thousands are made per video
    kind: Kind
    x0: float
    y0: float
    x1: float
    y1: float
    r: float
    colour: RGB


def bounds(shape: Shape) -> Box:
    if shape.kind is Kind.RECT:
        return shape.x0, shape.y0, shape.x1, shape.y1
    if shape.kind is Kind.ELLIPSE:
        return (shape.x0 - shape.x1, shape.y0 - shape.y1, shape.x0 + shape.x1,
                shape.y0 + shape.y1)
    return (min(shape.x0, shape.x1) - shape.r, min(shape.y0, shape.y1) - shape.r,
            max(shape.x0, shape.x1) + shape.r, max(shape.y0, shape.y1) + shape.r)


def union(shapes: list[Shape]) -> Box:
    boxes = [bounds(s) for s in shapes]
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))


def _q(v: float) -> float:
    """Snap to the 1/16-pixel grid: repeated poses give identical shapes (sprite cache hits)."""
    return round(v * 16) / 16


class _Frame:
    """Maps body units to pixels for one person: mirrored by facing, scaled by k."""

    def __init__(self, x: float, feet: float, k: float, facing: int) -> None:
        self.x, self.feet, self.k, self.f = x, feet, k, facing

    def _xy(self, u: float, v: float) -> tuple[float, float]:
        return _q(self.x + self.f * u * self.k), _q(self.feet + v * self.k)

    def rect(self, u0: float, v0: float, u1: float, v1: float, colour: RGB) -> Shape:
        (xa, ya), (xb, yb) = self._xy(u0, v0), self._xy(u1, v1)
        return Shape(Kind.RECT, min(xa, xb), ya, max(xa, xb), yb, 0.0, colour)

    def ellipse(self, u: float, v: float, ru: float, rv: float, colour: RGB) -> Shape:
        x, y = self._xy(u, v)
        return Shape(Kind.ELLIPSE, x, y, _q(ru * self.k), _q(rv * self.k), 0.0, colour)

    def limb(self, a: tuple[float, float], b: tuple[float, float], r: float,
             colour: RGB) -> Shape:
        (xa, ya), (xb, yb) = self._xy(*a), self._xy(*b)
        return Shape(Kind.CAPSULE, xa, ya, xb, yb, _q(r * self.k), colour)


def _upright(fr: _Frame, look: Look, lift: float, hands: tuple[tuple[float, float], ...],
             feet: tuple[tuple[float, float], ...]) -> list[Shape]:
    """Standing-height body lifted by `lift`; hands (back, front) and feet (back, front)."""
    v = -lift
    back_hand, front_hand = hands
    return [
        fr.limb((-4, v - 30), (back_hand[0], back_hand[1] + v), 1.3, look.shirt),
        fr.limb((-1.8, v - 18), (feet[0][0], feet[0][1] + v), 1.6, look.trousers),
        fr.limb((1.8, v - 18), (feet[1][0], feet[1][1] + v), 1.6, look.trousers),
        fr.rect(-4.5, v - 32, 4.5, v - 17, look.shirt),
        fr.limb((4, v - 30), (front_hand[0], front_hand[1] + v), 1.3, look.shirt),
        fr.ellipse(front_hand[0], front_hand[1] + v, 1.3, 1.3, look.skin),
        fr.ellipse(0, v - 37, 4, 4.8, look.skin),
        fr.ellipse(-0.6, v - 40.3, 4.2, 2.3, look.hair),
        fr.ellipse(2.4, v - 37.6, 0.9, 0.9, EYE),
    ]


def _crouched(fr: _Frame, look: Look) -> list[Shape]:
    shapes = []
    for side in (-1, 1):
        hip, knee, foot = (side * 1.8, -10.0), (side * 5.5, -7.0), (side * 3.0, 0.0)
        shapes += [fr.limb(hip, knee, 1.6, look.trousers), fr.limb(knee, foot, 1.6, look.trousers)]
    return [
        fr.limb((-4, -22), (-6, -11), 1.3, look.shirt), *shapes,
        fr.rect(-4.5, -24, 4.5, -9, look.shirt),
        fr.limb((4, -22), (6, -11), 1.3, look.shirt),
        fr.ellipse(6, -11, 1.3, 1.3, look.skin),
        fr.ellipse(0, -29, 4, 4.8, look.skin),
        fr.ellipse(-0.6, -32.3, 4.2, 2.3, look.hair),
        fr.ellipse(2.4, -29.6, 0.9, 0.9, EYE),
    ]


def _pose_shapes(fr: _Frame, look: Look, pose: Pose, tau: float) -> tuple[list[Shape], float]:
    """Body shapes and the lift of the back hand (for the lamp); tau: seconds into the pose."""
    rest_feet = ((-2.5, 0.0), (2.5, 0.0))
    if pose is Pose.CROUCH:
        return _crouched(fr, look), 9.5
    if pose is Pose.JUMP:
        lift = HOP_HEIGHT * abs(math.sin(math.pi * tau / HOP_PERIOD))
        hands = ((-6.5, -24.0), (6.5, -24.0))
        return _upright(fr, look, lift, hands, ((-3.0, -1.0), (3.0, -1.0))), lift + 22.5
    if pose is Pose.WAVE:
        swing = 4.5 + 1.5 * math.sin(2 * math.pi * tau / WAVE_PERIOD)
        return _upright(fr, look, 0.0, ((-5.5, -19.0), (swing, -45.0)), rest_feet), 17.5
    if pose is Pose.WALK:
        s = math.sin(2 * math.pi * tau / STRIDE_PERIOD)
        lift = 0.8 * abs(math.cos(2 * math.pi * tau / STRIDE_PERIOD))
        hands = ((-3.0 * s, -19.0), (3.0 * s, -19.0))
        return _upright(fr, look, lift, hands, ((4.0 * s, 0.0), (-4.0 * s, 0.0))), 17.5
    return _upright(fr, look, 0.0, ((-5.5, -19.0), (5.5, -19.0)), rest_feet), 17.5


def lamp_flash(st: Station, t: float) -> Flash | None:
    for second, flash in st.flashes:
        if abs(t - second) <= FLASH_HALF:
            return flash
    return None


def station_pose(st: Station, t: float) -> tuple[Pose, float]:
    """The pose at time t and the time into its periodic motion."""
    seg = segment_at(st.poses, t)
    return Pose(seg.value), t - seg.start + seg.phase


StationState = tuple[Pose, float, Flash | None]  # pose, phase in its cycle, lamp flash


def station_state(st: Station, t: float) -> StationState:
    """Everything a station person's look depends on at time t; periodic poses by their phase
    (to 0.1 ms), so equal states give equal shapes and the renderer can reuse them."""
    pose, tau = station_pose(st, t)
    period = {Pose.JUMP: HOP_PERIOD, Pose.WAVE: WAVE_PERIOD}.get(pose)
    phase = 0.0 if period is None else round(tau % period, 4)
    return pose, phase, lamp_flash(st, t)


def station_shapes(st: Station, t: float) -> tuple[list[Shape], Box]:
    return station_body(st, station_state(st, t))


def station_body(st: Station, state: StationState) -> tuple[list[Shape], Box]:
    """The person at a station (with lamp, and glow while it flashes) and their box; the glow
    is light, not part of the person, so it stays out of the box."""
    pose, phase, flash = state
    fr = _Frame(st.x, st.feet, st.k, st.facing)
    shapes, hand_lift = _pose_shapes(fr, st.look, pose, phase)
    hand = -5.5 if pose is not Pose.CROUCH else -6.0
    lamp = fr.rect(hand - 1.2, -hand_lift - 1.5, hand + 1.2, -hand_lift + 2.0,
                   LAMP if flash is None else LAMP_LIT)
    shapes.append(lamp)
    box = union(shapes)
    if flash is not None:
        glow = fr.ellipse(hand, -hand_lift, GLOW_R, GLOW_R, GLOW[flash])
        shapes.insert(len(shapes) - 1, glow)
    return shapes, box


def walker_shapes(w: Walker, t: float) -> tuple[list[Shape], Box]:
    # whole-pixel steps: the stride repeats every few frames, so its sprites can be reused
    fr = _Frame(round(w.x(t)), round(w.feet), w.k, w.direction)
    shapes, _ = _pose_shapes(fr, w.look, Pose.WALK, t - w.start + w.phase)
    return shapes, union(shapes)


def object_state(st: Station, t: float) -> tuple[ObjectMode, Segment]:
    seg = segment_at(st.objects, t)
    return ObjectMode(seg.value), seg


def object_shapes(st: Station, t: float) -> tuple[list[Shape], Box, int]:
    """The station's box or ball: shapes, box and object category (1 box, 2 ball)."""
    mode, seg = object_state(st, t)
    k, side = st.k, st.object_side
    edge = st.x + side * FOOT_HALF * k  # the owner's footprint edge on the object's side
    if mode is ObjectMode.BALL:
        cx = edge + side * (BALL_GAP + BALL_R) * k
        hop = BOUNCE_HEIGHT * abs(math.sin(math.pi * (t - seg.start) / BOUNCE_PERIOD))
        cy = st.feet - (BALL_R + hop) * k
        ball = Shape(Kind.ELLIPSE, cx, cy, BALL_R * k, BALL_R * k, 0.0, BALL)
        return [ball], bounds(ball), 2
    q = (t - seg.start) / (seg.end - seg.start)
    start = NEAR_GAP if seg.near else FAR_GAP
    if mode is ObjectMode.PUSH:
        gap = NEAR_GAP + (FAR_GAP - NEAR_GAP) * q
    elif mode is ObjectMode.PULL:
        gap = FAR_GAP - (FAR_GAP - NEAR_GAP) * q
    else:
        gap = start
    inner = edge + side * gap * k
    outer = inner + side * BOX_W * k
    x0, x1 = min(inner, outer), max(inner, outer)
    crate = Shape(Kind.RECT, x0, st.feet - BOX_H * k, x1, st.feet, 0.0, CRATE)
    band = Shape(Kind.RECT, x0, st.feet - 7.0 * k, x1, st.feet - 5.0 * k, 0.0, CRATE_BAND)
    return [crate, band], bounds(crate), 1
