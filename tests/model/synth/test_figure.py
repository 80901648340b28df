"""The docs picture: a rendered key frame with its labelled boxes."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg

from model.synth.figure import key_frame_figure


def test_key_frame_figure_writes_a_png(tmp_path: Path) -> None:
    out = key_frame_figure(tmp_path / "docs" / "frame.png", seed=4, second=8)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = mpimg.imread(out)
    assert image.shape[:2] == (800, 1200)
    assert image[..., :3].std() > 0.1  # a picture, not a blank canvas
