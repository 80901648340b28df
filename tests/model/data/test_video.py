"""Window decoding: nearest-frame resampling, edge repetition, resize, whole-video streaming."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from model.config import InputConfig
from model.data.toy import ToyVideo, draw_frame, frame_number, write_video
from model.data.video import (
    VideoError,
    WindowSpec,
    iter_windows,
    nearest_indices,
    probe,
    read_window,
)

SPEC = WindowSpec(frames=8, fps=25.0, short_side=32, max_long_side=64)


def expected_frames(spec: WindowSpec, second: int, fps: float, count: int) -> list[int]:
    """Independent reference: nearest source frame j = round(t * fps), ties down, clamped."""
    out = []
    for t in spec.times(second):
        j = math.ceil(t * fps - 0.5 - 1e-9)  # round half down
        out.append(min(max(j, 0), count - 1))
    return out


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[float, Path]:
    root = tmp_path_factory.mktemp("videos")
    out = {}
    for fps in (25.0, 30.0, 12.0):
        video = ToyVideo(f"v{fps:g}", seconds=4, fps=fps)
        path = root / f"{video.video_id}.mp4"
        write_video(path, (draw_frame(i, video) for i in range(round(4 * fps))), fps)
        out[fps] = path
    return out


@pytest.mark.parametrize(
    ("frame_times", "targets", "expected"),
    [
        ([0.0, 1.0, 2.0], [0.5, 1.5], [0, 1]),  # ties go to the earlier frame
        ([0.0, 1.0, 2.0], [0.51, 1.49], [1, 1]),
        ([0.0, 1.0, 2.0], [-3.0, 5.0], [0, 2]),  # outside: edge frames repeat
        ([0.4], [0.0, 9.0], [0, 0]),
    ],
)
def test_nearest_indices(frame_times: list[float], targets: list[float], expected: list[int]):
    got = nearest_indices(np.array(frame_times), np.array(targets))
    assert got.tolist() == expected


@pytest.mark.parametrize("frames", [8, 64])  # 64 frames (2.56 s) overhang both ends
@pytest.mark.parametrize("fps", [25.0, 30.0, 12.0])
@pytest.mark.parametrize("second", [0, 2, 3])  # first second, middle, last second (edges)
def test_window_picks_nearest_source_frames(
    videos: dict[float, Path], frames: int, fps: float, second: int
):
    spec = WindowSpec(frames, 25.0, 32, 64)
    window = read_window(videos[fps], second, spec)
    got = [frame_number(f) for f in window]
    count = round(4 * fps)
    assert got == expected_frames(spec, second, fps, count)
    if second == 0:
        assert got[: frames // 2 + 1] == [0] * (frames // 2 + 1)  # the first frame repeats
    if second == 3 and frames == 64:
        assert got[-4:] == [count - 1] * 4  # the last frame repeats past the end


def test_30fps_window_is_resampled_to_25(videos: dict[float, Path]):
    got = [frame_number(f) for f in read_window(videos[30.0], 1, SPEC)]
    # times 0.84 .. 1.12 s every 0.04 s, at 30 fps: 25.2, 26.4, ... 33.6 -> nearest frames
    assert got == [25, 26, 28, 29, 30, 31, 32, 34]


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((64, 48), (43, 32)),  # landscape: short side to 32
        ((48, 64), (32, 43)),  # portrait
        ((320, 40), (64, 8)),  # very wide: long side capped at 64, aspect kept
        ((32, 32), (32, 32)),
    ],
)
def test_resized_size(size: tuple[int, int], expected: tuple[int, int]):
    width, height, scale = SPEC.resized(*size)
    assert (width, height) == expected
    assert scale == pytest.approx(expected[0] / size[0], rel=0.02)


def test_window_has_resized_shape(videos: dict[float, Path]):
    assert read_window(videos[25.0], 1, SPEC).shape == (8, 32, 43, 3)


@pytest.mark.parametrize("fps", [25.0, 30.0])
def test_streaming_matches_random_access(videos: dict[float, Path], fps: float):
    streamed = dict(iter_windows(videos[fps], SPEC))
    assert sorted(streamed) == [0, 1, 2, 3]  # every second of a 4 s video, not second 4
    for second, window in streamed.items():
        np.testing.assert_array_equal(window, read_window(videos[fps], second, SPEC))


def test_streaming_selected_seconds(videos: dict[float, Path]):
    got = [s for s, _ in iter_windows(videos[25.0], SPEC, seconds=[3, 1])]
    assert got == [1, 3]


def test_spec_key_follows_the_spec():
    other = WindowSpec.from_input(InputConfig(frames=16, alpha=4))
    assert SPEC.key() != other.key()
    assert SPEC.key() == WindowSpec(8, 25.0, 32, 64).key()


def test_garbage_file_names_the_path(tmp_path: Path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"\x00not a video" * 100)
    with pytest.raises(VideoError, match=r"broken\.mp4"):
        probe(path)


def test_key_frame_past_the_end_is_an_error(videos: dict[float, Path]):
    with pytest.raises(VideoError, match=r"v25\.mp4.*past the last frame"):
        read_window(videos[25.0], 9, SPEC)


def test_probe_reads_size(videos: dict[float, Path]):
    info = probe(videos[30.0])
    assert (info.width, info.height) == (64, 48)
    assert info.origin == pytest.approx(0.0)
