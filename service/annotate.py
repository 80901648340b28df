"""The annotated video of `aia detect`: every input frame, re-encoded with PyAV, with each
person's box in a colour per track id, the id, and the top actions with their scores.

Streaming: one decoded frame at a time goes in, is drawn on and encoded; nothing but the
response's key frames is held. Between two key frames a person seen in both (same track id)
moves linearly; anyone else is held from their key frame until the next one. Labels are
drawn with PIL on a filled background so they read on any picture, with a font size that
follows the output height.
"""

from __future__ import annotations

import colorsys
import importlib.util
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from model.synth.video import CODECS as ENCODERS
from model.synth.video import choose_codec
from service.schemas import DetectResponse, Keyframe, Person

FONT_FILE = "DejaVuSans-Bold.ttf"
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@dataclass(frozen=True)
class Style:
    scale: float = 1.0  # output size = input size x scale (small videos read better larger)
    actions: int = 3  # actions listed per person
    crf: int = 20  # H.264 quality (lower is better)


@dataclass(frozen=True)
class Shown:
    """One person as drawn on one frame."""

    box: tuple[float, float, float, float]  # normalised x1, y1, x2, y2
    colour: tuple[int, int, int]
    lines: tuple[str, ...]


def track_colour(key: int) -> tuple[int, int, int]:
    """A distinct, saturated colour per track id (golden-ratio hue steps)."""
    hue = (key * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def load_font(size: int) -> Font:
    """DejaVu Sans Bold from matplotlib's data when installed, else PIL's built-in font."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.origin is not None:
        path = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / FONT_FILE
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)


def person_lines(person: Person, index: int, actions: int) -> tuple[str, ...]:
    name = f"#{person.person_id}" if person.person_id is not None else f"person {index + 1}"
    shown = [f"{a.name} {a.score:.2f}" for a in person.actions[:actions]]
    return (name, *shown)


def _key(person: Person, index: int) -> int:
    return person.person_id if person.person_id is not None else index


def shown_at(t: float, keyframes: Sequence[Keyframe], at: int, actions: int) -> list[Shown]:
    """Persons on the frame at time t, given keyframes[at] is the last key frame <= t (or the
    first one, before it)."""
    here = keyframes[at]
    after = keyframes[at + 1] if at + 1 < len(keyframes) else None
    span = (after.timestamp - here.timestamp) if after is not None else 0.0
    w = min(max((t - here.timestamp) / span, 0.0), 1.0) if span > 0 else 0.0
    following = {p.person_id: p for p in (after.persons if after else [])
                 if p.person_id is not None}
    out = []
    for i, person in enumerate(here.persons):
        box = np.asarray(person.box, np.float64)
        nxt = following.get(person.person_id) if person.person_id is not None else None
        if nxt is not None:
            box = (1 - w) * box + w * np.asarray(nxt.box, np.float64)
        out.append(Shown(tuple(float(v) for v in box), track_colour(_key(person, i)),
                         person_lines(person, i, actions)))
    return out


class Painter:
    """Draws Shown persons on RGB images of one size; label patches are cached per text."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.font = load_font(max(9, round(height / 34)))
        self.line = max(1, round(height / 240))
        self._labels: dict[tuple[tuple[str, ...], tuple[int, int, int]], Image.Image] = {}

    def label(self, lines: tuple[str, ...], colour: tuple[int, int, int]) -> Image.Image:
        key = (lines, colour)
        if key not in self._labels:
            pad = max(2, self.font.size // 5) if isinstance(self.font, ImageFont.FreeTypeFont) \
                else 2
            probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
            sizes = [probe.textbbox((0, 0), text, font=self.font) for text in lines]
            step = max(b[3] for b in sizes) + pad
            width = max(b[2] for b in sizes) + 2 * pad
            patch = Image.new("RGB", (width, step * len(lines) + pad), (20, 20, 20))
            draw = ImageDraw.Draw(patch)
            draw.rectangle((0, 0, width, step), fill=colour)  # the id line in the track colour
            for n, text in enumerate(lines):
                draw.text((pad, pad // 2 + n * step), text, font=self.font,
                          fill=(0, 0, 0) if n == 0 else (255, 255, 255))
            self._labels[key] = patch
        return self._labels[key]

    def draw(self, image: Image.Image, persons: Sequence[Shown]) -> None:
        draw = ImageDraw.Draw(image)
        scale = (self.width, self.height, self.width, self.height)
        for person in persons:
            x1, y1, x2, y2 = (round(v * s) for v, s in zip(person.box, scale, strict=True))
            draw.rectangle((x1, y1, x2, y2), outline=person.colour, width=self.line)
        placed: list[tuple[int, int, int, int]] = []
        for person in sorted(persons, key=lambda p: p.box[1]):  # labels over every box
            patch = self.label(person.lines, person.colour)
            spot = self.place(person.box, patch.size, placed)
            placed.append((*spot, spot[0] + patch.width, spot[1] + patch.height))
            image.paste(patch, spot)

    def place(self, box: tuple[float, float, float, float], size: tuple[int, int],
              placed: Sequence[tuple[int, int, int, int]]) -> tuple[int, int]:
        """Top-left corner for a label: above the box, else below it, else inside its top,
        else slid up or down from there, at the first spot that covers no label already drawn
        (the least covering one when none is free)."""
        w, h = size
        x1, y1, _, y2 = (round(v * s) for v, s in zip(
            box, (self.width, self.height, self.width, self.height), strict=True))
        left = min(max(x1, 0), max(self.width - w, 0))
        step = max(h // 3, 1)
        tops = [y1 - h, y2, y1, *range(y1 - h - step, -1, -step),
                *range(y1 + step, self.height - h, step)]
        best, best_cover = (left, max(min(y1 - h, self.height - h), 0)), None
        for top in tops:
            if top < 0 or top + h > self.height:
                continue
            cover = sum(max(0, min(left + w, b[2]) - max(left, b[0]))
                        * max(0, min(top + h, b[3]) - max(top, b[1])) for b in placed)
            if cover == 0:
                return left, top
            if best_cover is None or cover < best_cover:
                best, best_cover = (left, top), cover
        return best


def _even(n: int) -> int:
    return n + (n % 2)  # yuv420p needs even sizes; odd sizes grow by one pixel


def input_frames(video: Path) -> Iterator[tuple[float, av.VideoFrame]]:
    """(seconds from the first frame, frame) for every decoded frame, streaming."""
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        first: float | None = None
        for n, frame in enumerate(container.decode(stream)):
            seconds = float(frame.time) if frame.time is not None else n / float(
                stream.average_rate or 25)
            first = seconds if first is None else first
            yield seconds - first, frame


def annotate_video(video: Path, response: DetectResponse, out: Path, style: Style = Style(),
                   codec: str = "auto", on_frame: Callable[[], None] | None = None) -> int:
    """Writes `out` (mp4) and returns the number of frames written (= frames decoded)."""
    keyframes = sorted(response.keyframes, key=lambda k: k.timestamp)
    times = np.array([k.timestamp for k in keyframes], np.float64)
    with av.open(str(video)) as probe:
        stream = probe.streams.video[0]
        rate = Fraction(stream.average_rate or 25).limit_denominator(1001 * 1000)
        width, height = stream.codec_context.width, stream.codec_context.height
    out_w, out_h = _even(round(width * style.scale)), _even(round(height * style.scale))
    painter = Painter(out_w, out_h)
    out.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with av.open(str(out), "w") as container:
        # the synthetic benchmark's choice: H.264 (libx264) when present, else MPEG-4
        encoder = container.add_stream(ENCODERS[choose_codec(codec)], rate=rate)
        encoder.width, encoder.height, encoder.pix_fmt = out_w, out_h, "yuv420p"
        if encoder.codec_context.name in ("libx264", "h264"):
            encoder.options = {"crf": str(style.crf), "preset": "veryfast"}
        else:
            encoder.bit_rate = max(out_w * out_h * 4, 400_000)
        half_frame = 0.5 / float(rate)
        for t, frame in input_frames(video):
            image = frame.to_image()
            if image.size != (out_w, out_h):
                image = image.resize((out_w, out_h), Image.Resampling.BILINEAR)
            if len(keyframes):
                at = max(int(np.searchsorted(times, t + half_frame, side="right")) - 1, 0)
                painter.draw(image, shown_at(t, keyframes, at, style.actions))
            picture = av.VideoFrame.from_image(image)
            picture.pts = written
            picture.time_base = 1 / rate
            for packet in encoder.encode(picture):
                container.mux(packet)
            written += 1
            if on_frame is not None:
                on_frame()
        for packet in encoder.encode():
            container.mux(packet)
    return written
