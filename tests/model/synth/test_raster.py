"""NumPy drawing: shapes cover the pixels whose centres they contain, later shapes win, and the
sprite caches never change a frame."""

from __future__ import annotations

import numpy as np
import pytest

from model.synth.body import Kind, Shape
from model.synth.raster import Painter, _light, background, draw, render_frame
from model.synth.scene import sample_scene, shake_margin

RED, BLUE = (255, 0, 0), (0, 0, 255)


def centres(size: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(size)[None, :] + 0.5
    y = np.arange(size)[:, None] + 0.5
    return np.broadcast_to(x, (size, size)), np.broadcast_to(y, (size, size))


def expected_mask(shape: Shape, size: int) -> np.ndarray:
    x, y = centres(size)
    if shape.kind is Kind.RECT:
        return (x >= shape.x0) & (x < shape.x1) & (y >= shape.y0) & (y < shape.y1)
    if shape.kind is Kind.ELLIPSE:
        return ((x - shape.x0) / shape.x1) ** 2 + ((y - shape.y0) / shape.y1) ** 2 <= 1
    ax, ay, bx, by = shape.x0, shape.y0, shape.x1, shape.y1
    length2 = max((bx - ax) ** 2 + (by - ay) ** 2, 1e-12)  # a zero-length capsule is a disc
    q = np.clip(((x - ax) * (bx - ax) + (y - ay) * (by - ay)) / length2, 0, 1)
    return (x - ax - q * (bx - ax)) ** 2 + (y - ay - q * (by - ay)) ** 2 <= shape.r**2


@pytest.mark.parametrize("shape", [
    Shape(Kind.RECT, 2.0, 3.0, 5.0, 6.5, 0.0, RED),
    Shape(Kind.ELLIPSE, 8.3, 7.6, 3.2, 4.1, 0.0, RED),
    Shape(Kind.CAPSULE, 3.1, 12.4, 15.2, 4.9, 1.7, RED),
    Shape(Kind.CAPSULE, 10.0, 10.0, 10.0, 10.0, 2.5, RED),  # a disc
    Shape(Kind.ELLIPSE, -2.0, 8.0, 5.0, 5.0, 0.0, RED),  # cut by the edge
])
def test_shapes_cover_the_pixels_whose_centres_they_contain(shape: Shape) -> None:
    canvas = np.zeros((20, 20, 3), np.uint8)
    draw(canvas, [shape])
    assert np.array_equal(canvas[..., 0] == 255, expected_mask(shape, 20))
    assert (canvas[..., 0] == 255).sum() > 4


def test_later_shapes_cover_earlier_ones_and_offsets_shift() -> None:
    canvas = np.zeros((20, 20, 3), np.uint8)
    shapes = [Shape(Kind.RECT, 2, 2, 10, 10, 0, RED), Shape(Kind.RECT, 5, 5, 12, 12, 0, BLUE)]
    draw(canvas, shapes, dx=1, dy=2)
    assert tuple(canvas[4, 3]) == RED  # (2,2) shifted by (1,2) -> row 4, column 3
    assert tuple(canvas[8, 8]) == BLUE  # the overlap belongs to the later shape
    assert tuple(canvas[3, 3]) == (0, 0, 0)


def test_cached_sprites_draw_what_a_fresh_painter_draws() -> None:
    scene = sample_scene("v", np.random.SeedSequence([2, 0]), 192, 128, 25.0, 8)
    world = background(scene)
    painter = Painter()
    frames = [render_frame(scene, i, world, painter) for i in range(0, 200)]
    for i in (3, 77, 150, 199):
        assert np.array_equal(frames[i], render_frame(scene, i, world, Painter())), i
    assert len(painter._sprites) < 200 * 5  # most groups were reused


def test_frames_move_and_glitches_break_up() -> None:
    scene = sample_scene("v", np.random.SeedSequence([0, 0]), 192, 128, 25.0, 30)
    assert scene.glitches, "this seed has a glitched second"
    world = background(scene)
    m = shake_margin(scene.height)
    assert world.shape == (scene.height + 2 * m, scene.width + 2 * m, 3)
    painter = Painter()
    second = scene.glitches[0]
    key = scene.key_frame(second)
    clean = render_frame(scene, key - 10, world, painter)
    broken = render_frame(scene, key, world, painter)
    after = render_frame(scene, key - 9, world, painter)
    assert clean.shape == (128, 192, 3)
    assert clean.dtype == np.uint8
    assert 0 < np.abs(after.astype(int) - clean).mean() < 10  # people move a little
    assert np.abs(broken.astype(int) - clean).mean() > 30


@pytest.mark.parametrize("gain", [0.86, 1.0, 1.14])
def test_lighting_scales_bright_colours_without_wrapping(gain: float) -> None:
    """A lit frame is the frame times gain * tint, clipped at 255: bright glows and balls stay
    bright (version 1 wrapped them dark in uint16 once gain * tint passed 1.004)."""
    colours = np.array([[[255, 40, 40], [40, 255, 60], [250, 185, 30], [0, 128, 255]]], np.uint8)
    tint = (1.05, 1.0, 0.95)
    lit = _light(colours, gain, tint).astype(int)
    expected = np.minimum((colours * (np.array(tint) * gain)).astype(int), 255)
    assert np.abs(lit - expected).max() <= 1
    assert lit[0, 0, 0] >= 219  # the red glow's red channel stays the brightest
    assert lit[0, 1, 1] >= 219
