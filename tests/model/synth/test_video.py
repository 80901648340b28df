"""Encoding the synthetic videos: codec choice, faithful frames, same input -> same file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model.synth.raster import Painter, background, render_frame
from model.synth.scene import sample_scene
from model.synth.video import (
    VideoWriteError,
    available_codecs,
    choose_codec,
    read_video,
    write_video,
)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    scene = sample_scene("v", np.random.SeedSequence([5, 5]), 96, 64, 25.0, 5)
    world, painter = background(scene), Painter()
    return [render_frame(scene, i, world, painter) for i in range(scene.frames)]


def test_codec_choice() -> None:
    assert available_codecs()[0] == choose_codec("auto")
    for name in available_codecs():
        assert choose_codec(name) == name
    with pytest.raises(VideoWriteError, match="must be one of"):
        choose_codec("vp9")


@pytest.mark.parametrize("codec", ["h264", "mpeg4"])
def test_encodes_faithfully_and_repeatably(tmp_path: Path, frames: list[np.ndarray],
                                           codec: str) -> None:
    assert write_video(tmp_path / "a.mp4", frames, 25.0, codec, 96, 64) == len(frames)
    assert write_video(tmp_path / "b.mp4", iter(frames), 25.0, codec, 96, 64) == len(frames)
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()
    decoded = read_video(tmp_path / "a.mp4")
    assert decoded.shape == (len(frames), 64, 96, 3)
    # 4:2:0 chroma alone costs about 3 grey levels at this small size (lossless H.264: 3.06)
    assert np.abs(decoded.astype(int) - np.stack(frames)).mean() < 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "b.mp4"]  # no temp files


def test_a_failed_encode_names_the_file_and_leaves_nothing(tmp_path: Path) -> None:
    odd = [np.zeros((64, 95, 3), np.uint8)] * 3  # YUV 4:2:0 needs an even width
    with pytest.raises(VideoWriteError, match=r"c\.mp4: encoding with libx264 failed"):
        write_video(tmp_path / "c.mp4", odd, 25.0, "h264", 95, 64)
    assert list(tmp_path.iterdir()) == []
