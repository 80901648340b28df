"""Drawing one frame with NumPy: background, people and objects back to front, foreground
posts, camera shake, lighting drift and glitches. Every draw touches only the shape's bounding
box, so a 192x128 frame with eight people costs about a millisecond."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from functools import partial
from typing import NamedTuple

import numpy as np

from model.synth.body import (
    Kind,
    Shape,
    StationState,
    object_shapes,
    station_body,
    station_state,
    walker_shapes,
)
from model.synth.scene import (
    FOOT_HALF,
    Scene,
    Station,
    Walker,
    camera_offset,
    light_gain,
    shake_margin,
)

POST: tuple[int, int, int] = (60, 50, 45)
GLITCH_HALF = 0.2  # seconds of broken frames around a glitched key second


_RECT, _ELLIPSE, _CAPSULE = int(Kind.RECT), int(Kind.ELLIPSE), int(Kind.CAPSULE)


def _masks(p: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """[n,h,w] coverage of shapes p [n,6] (kind, x0, y0, x1, y1, r) at pixel centres xs [w],
    ys [h]."""
    kinds = p[:, 0]
    x = xs[None, None, :]  # [1,1,w]
    y = ys[None, :, None]  # [1,h,1]
    masks = np.zeros((len(p), len(ys), len(xs)), bool)
    x0, y0, x1, y1, r = (p[:, i, None, None] for i in range(1, 6))  # each [n,1,1]
    sel = kinds == _RECT
    if sel.any():
        masks[sel] = (x >= x0[sel]) & (x < x1[sel]) & (y >= y0[sel]) & (y < y1[sel])
    sel = kinds == _ELLIPSE
    if sel.any():
        masks[sel] = ((x - x0[sel]) / x1[sel]) ** 2 + ((y - y0[sel]) / y1[sel]) ** 2 <= 1.0
    sel = kinds == _CAPSULE
    if sel.any():
        ax, ay = x0[sel], y0[sel]
        ex, ey = x1[sel] - ax, y1[sel] - ay
        px, py = x - ax, y - ay  # [m,h,w] offsets from each capsule's first end
        q = np.clip((px * ex + py * ey) / np.maximum(ex * ex + ey * ey, 1e-9), 0.0, 1.0)
        masks[sel] = (px - q * ex) ** 2 + (py - q * ey) ** 2 <= r[sel] ** 2
    return masks


def _extent(p: np.ndarray) -> tuple[float, float, float, float]:
    """Joint bounding box (left, top, right, bottom) of shapes p [n,6]."""
    kinds, x0, y0, x1, y1, r = p.T
    rect, ell = kinds == _RECT, kinds == _ELLIPSE
    left = np.where(rect, x0, np.where(ell, x0 - x1, np.minimum(x0, x1) - r))
    top = np.where(rect, y0, np.where(ell, y0 - y1, np.minimum(y0, y1) - r))
    right = np.where(rect, x1, np.where(ell, x0 + x1, np.maximum(x0, x1) + r))
    bottom = np.where(rect, y1, np.where(ell, y0 + y1, np.maximum(y0, y1) + r))
    return left.min(), top.min(), right.max(), bottom.max()


class _Sprite(NamedTuple):
    left: int  # offset of the sprite's corner from the anchor
    top: int
    mask: np.ndarray  # [h,w,1] bool
    image: np.ndarray  # [h,w,3] uint8


def _sprite(p: np.ndarray, colours: np.ndarray) -> _Sprite:
    """Rasterise shapes p [n,6] (relative to an anchor) with colours [n,3]; later shapes cover
    earlier ones. All shapes are evaluated at once over the joint bounding box: one NumPy pass
    per person instead of one per shape."""
    x_lo, y_lo, x_hi, y_hi = _extent(p)
    left, top = math.floor(x_lo), math.floor(y_lo)
    width, height = max(math.ceil(x_hi) - left, 1), max(math.ceil(y_hi) - top, 1)
    masks = _masks(p, np.arange(left, left + width) + 0.5, np.arange(top, top + height) + 0.5)
    last = len(p) - 1 - np.argmax(masks[::-1], axis=0)  # [h,w] the topmost shape
    return _Sprite(left, top, masks.any(axis=0)[:, :, None], colours[last])


Placed = tuple[int, int, _Sprite]  # whole-pixel anchor (x, y) and the sprite drawn there


class Painter:
    """Draws groups of shapes through caches of rasterised sprites: people at a station hold a
    pose for seconds and periodic poses repeat every few frames, so most frames reuse sprites
    of earlier ones. Shapes on the 1/16-pixel grid (see body.py) make repeats exact. Keep one
    Painter per video."""

    def __init__(self) -> None:
        self._sprites: dict[bytes, _Sprite] = {}  # by shapes relative to their anchor
        self._placed: dict[Hashable, Placed] = {}  # by the caller's key for a group

    def _place(self, shapes: list[Shape]) -> Placed:
        p = np.array([s[:6] for s in shapes], np.float64)  # [n,6] kind x0 y0 x1 y1 r
        # relative to a whole-pixel anchor (ellipse radii stay): a moved pose is a cache hit
        ax, ay = math.floor(p[0, 1]), math.floor(p[0, 2])
        ends = p[:, 0] != _ELLIPSE
        p[:, 1] -= ax
        p[:, 2] -= ay
        p[ends, 3] -= ax
        p[ends, 4] -= ay
        colours = np.array([s.colour for s in shapes], np.uint8)  # [n,3]
        key = p.tobytes() + colours.tobytes()
        sprite = self._sprites.get(key)
        if sprite is None:
            sprite = self._sprites[key] = _sprite(p, colours)
        return ax, ay, sprite

    def draw(self, canvas: np.ndarray, shapes: list[Shape] | Callable[[], list[Shape]],
             dx: int = 0, dy: int = 0, key: Hashable = None) -> None:
        """Fill shapes (or what `shapes()` makes) shifted by (dx, dy) into canvas [H,W,3]; a
        pixel (i, j) is covered when its centre (j + 0.5, i + 0.5) is inside a shape. With a
        `key`, equal keys must mean equal shapes: the shapes are then made only once."""
        placed = self._placed.get(key) if key is not None else None
        if placed is None:
            made = shapes() if callable(shapes) else shapes
            if not made:
                return
            placed = self._place(made)
            if key is not None:
                self._placed[key] = placed
        ax, ay, sprite = placed
        height, width = canvas.shape[:2]
        top, left = ay + sprite.top + dy, ax + sprite.left + dx
        i0, j0 = max(top, 0), max(left, 0)
        i1 = min(top + sprite.mask.shape[0], height)
        j1 = min(left + sprite.mask.shape[1], width)
        if i0 < i1 and j0 < j1:
            rows, cols = slice(i0 - top, i1 - top), slice(j0 - left, j1 - left)
            np.copyto(canvas[i0:i1, j0:j1], sprite.image[rows, cols],
                      where=sprite.mask[rows, cols])


def draw(canvas: np.ndarray, shapes: list[Shape], dx: int = 0, dy: int = 0) -> None:
    """Draw once, without keeping sprites."""
    Painter().draw(canvas, shapes, dx, dy)


def background(scene: Scene) -> np.ndarray:
    """World background [H+2m, W+2m, 3] uint8, m = shake margin: wall, doors, floor, grain."""
    m = shake_margin(scene.height)
    height, width = scene.height + 2 * m, scene.width + 2 * m
    canvas = np.empty((height, width, 3), np.uint8)
    horizon = round(scene.horizon) + m
    canvas[:horizon] = scene.wall
    canvas[horizon:] = scene.floor
    for x, w, top, colour in scene.doors:
        canvas[round(top) + m:horizon, max(round(x) + m, 0):round(x + w) + m] = colour
    canvas[horizon - 1:horizon + 1] = (np.array(scene.floor) * 0.6).astype(np.uint8)
    grain = np.random.default_rng(scene.texture_seed).integers(-6, 7, (height, width, 1))
    return np.clip(canvas.astype(np.int16) + grain, 0, 255).astype(np.uint8)


Layer = tuple[float, Hashable, Callable[[], list[Shape]]]  # depth, cache key, shape maker


def scene_layers(scene: Scene, t: float) -> list[Layer]:
    """Every station (object, then person) and visible walker at time t, far to near."""
    layers: list[Layer] = []
    for st in scene.stations:
        state = station_state(st, t)
        thing = object_shapes(st, t)[0]  # two shapes: cheap to make, and a still box repeats
        layers.append((st.feet, tuple(thing), partial(list, thing)))
        layers.append((st.feet, (st.pid, *state), partial(_person, st, state)))
    for w in scene.walkers:
        x = w.x(t)
        if -2 * FOOT_HALF * w.k < x < scene.width + 2 * FOOT_HALF * w.k:
            layers.append((w.feet, None, partial(_walker, w, t)))
    layers.sort(key=lambda layer: layer[0])  # painter's order: far (small feet y) first
    return layers


def _person(st: Station, state: StationState) -> list[Shape]:
    return station_body(st, state)[0]


def _walker(w: Walker, t: float) -> list[Shape]:
    return walker_shapes(w, t)[0]


def _light(frame: np.ndarray, gain: float, tint: tuple[float, float, float]) -> np.ndarray:
    # fixed point (8 fractional bits): integer maths is exact, so frames repeat bit for bit
    # uint32: 255 * a scale above 257 (gain * tint > 1.004) does not fit uint16 and wrapped,
    # turning bright colours dark (generator version 1)
    scale = np.array([round(256 * gain * c) for c in tint], np.uint32)
    lit = np.multiply(frame, scale, dtype=np.uint32)
    lit >>= 8
    return np.minimum(lit, 255, out=lit).astype(np.uint8)


def _glitched(scene: Scene, t: float) -> bool:
    return any(abs(t - g) <= GLITCH_HALF for g in scene.glitches)


def render_frame(scene: Scene, index: int, world: np.ndarray, painter: Painter) -> np.ndarray:
    """Frame `index` as uint8 [H,W,3]; `world` is `background(scene)`, `painter` a Painter
    kept for the whole video."""
    t = scene.frame_time(index)
    ox, oy = camera_offset(scene, t)
    m = shake_margin(scene.height)
    frame = world[m - oy:m - oy + scene.height, m - ox:m - ox + scene.width].copy()
    for _, key, make in scene_layers(scene, t):
        painter.draw(frame, make, ox, oy, key)
    for x, w, top in scene.posts:
        frame[max(round(top + oy), 0):, max(round(x + ox), 0):max(round(x + w + ox), 0)] = POST
    frame = _light(frame, light_gain(scene, t), scene.tint)
    if _glitched(scene, t):
        # signal loss: dark, noisy, the picture torn sideways
        noise = np.random.default_rng([scene.texture_seed, index])
        frame = np.roll(frame // 4, int(noise.integers(-20, 21)), axis=1)
        frame = np.clip(frame + noise.integers(0, 60, frame.shape), 0, 255).astype(np.uint8)
    return frame
