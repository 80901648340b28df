"""probe_video / decode_video / key frames / windows on real files written with PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.reformatter import VideoReformatter

from exporters.artifact import InputSpec
from model.data.video import WindowSpec, read_window, to_rgb
from service.decode import (
    Decoded,
    Limits,
    clip_windows,
    decode_video,
    keyframe_times,
    probe_video,
)
from service.errors import DeadlineExceeded, ServiceError, Undecodable, VideoLimit
from tests.service.media import BAD_MEDIA, write_test_video

LIMITS = Limits(max_upload_bytes=1 << 20, max_duration_s=60.0, max_width=1920,
                max_height=1080, max_frames=5000, decode_timeout_s=30.0)


def make_spec(frames: int = 8, fps: float = 10.0, short_side: int = 40, max_long_side: int = 80,
              min_side: int = 32) -> InputSpec:
    return InputSpec(frames=frames, fps=fps, fast_stride=1, alpha=4, short_side=short_side,
                     max_long_side=max_long_side, min_side=min_side, mean=(0.0, 0.0, 0.0),
                     std=(1.0, 1.0, 1.0), test_box_enlarge=(0.0, 0.0), memory_before=1,
                     memory_after=1, persons_per_second=2, max_persons=4, max_objects=2,
                     feature_dim=8, num_classes=3)


@pytest.fixture(scope="module")
def h264_video(tmp_path_factory) -> Path:
    return write_test_video(tmp_path_factory.mktemp("videos") / "clip.mp4", seconds=3.0,
                            fps=25)


@pytest.mark.parametrize(("codec", "suffix"), [("libx264", "mp4"), ("mpeg4", "mp4"),
                                               ("libvpx-vp9", "webm"), ("mpeg4", "mkv")])
def test_probe_reads_real_containers(tmp_path, codec, suffix):
    path = write_test_video(tmp_path / f"v.{suffix}", seconds=2.0, fps=25, codec=codec)
    meta = probe_video(path, LIMITS)
    assert (meta.width, meta.height) == (64, 48)
    assert meta.fps == pytest.approx(25.0)
    assert meta.duration_s == pytest.approx(2.0, abs=0.1)
    assert meta.frames == 50
    expected = {"libx264": "h264", "mpeg4": "mpeg4", "libvpx-vp9": "vp9"}[codec]
    assert meta.codec == expected


def test_decode_resamples_resizes_and_times(h264_video):
    spec = make_spec(fps=10.0, short_side=40, max_long_side=80, min_side=32)
    decoded = decode_video(h264_video, probe_video(h264_video, LIMITS), spec, LIMITS)
    # 3 s at 25 fps: last frame at 2.96 s -> grid 0.0 .. 3.0 at 10 fps (first point >= 2.96)
    assert decoded.frames.shape == (31, 40, 53, 3)
    assert decoded.frames.dtype == np.uint8
    np.testing.assert_allclose(decoded.times, np.arange(31) / 10.0)
    assert decoded.size == (53, 40)
    assert decoded.scale == pytest.approx(40 / 48)
    # grid point k at 0.1 k s is source frame 2.5 k (25 fps); ties go to the earlier frame
    source = _source_frames(h264_video, (53, 40))
    picks = np.floor(2.5 * np.arange(31)).astype(int).clip(max=len(source) - 1)
    np.testing.assert_array_equal(decoded.frames, source[picks])


def _source_frames(path: Path, size: tuple[int, int]) -> np.ndarray:
    """uint8 [F,h,w,3]: every source frame, resized like training."""
    reformatter = VideoReformatter()
    with av.open(str(path)) as container:
        return np.stack([to_rgb(f, size[0], size[1], reformatter)
                         for f in container.decode(video=0)])


@pytest.mark.parametrize("second", [0, 1, 2])
def test_windows_equal_training_windows(h264_video, second):
    spec = make_spec(frames=8, fps=10.0)
    decoded = decode_video(h264_video, probe_video(h264_video, LIMITS), spec, LIMITS)
    served = clip_windows(decoded, np.array([float(second)]), spec)
    trained = read_window(h264_video, second, WindowSpec(8, 10.0, 40, 80))
    assert served.shape == (1, *trained.shape)
    np.testing.assert_array_equal(served[0], trained)


def test_windows_repeat_edge_frames(h264_video):
    spec = make_spec(frames=8, fps=10.0)
    decoded = decode_video(h264_video, probe_video(h264_video, LIMITS), spec, LIMITS)
    windows = clip_windows(decoded, np.array([0.0, 3.0]), spec)
    assert windows.shape == (2, 8, 40, 53, 3)
    for i in range(4):  # before time 0: the first frame
        np.testing.assert_array_equal(windows[0, i], decoded.frames[0])
    for i in range(4, 8):  # past the end: the last frame
        np.testing.assert_array_equal(windows[1, i], decoded.frames[-1])


def test_decode_pads_small_frames_bottom_right(tmp_path):
    path = write_test_video(tmp_path / "v.mp4", seconds=1.0, fps=10)
    spec = make_spec(short_side=16, max_long_side=100, min_side=32)
    decoded = decode_video(path, probe_video(path, LIMITS), spec, LIMITS)
    assert decoded.size == (21, 16)
    assert decoded.frames.shape[1:] == (32, 32, 3)
    assert not decoded.frames[:, 16:].any()
    assert not decoded.frames[:, :, 21:].any()
    assert decoded.frames[:, :16, :21].any()


def test_keyframe_times_are_whole_seconds_inside_the_video():
    np.testing.assert_array_equal(keyframe_times(2.0, 1.0), [0.0, 1.0])
    np.testing.assert_array_equal(keyframe_times(2.5, 1.0), [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(keyframe_times(1.2, 2.0), [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(keyframe_times(0.3, 1.0), [0.0])


@pytest.mark.parametrize(("limits", "words"), [
    (Limits(1 << 20, 1.0, 1920, 1080, 5000, 30.0), ["duration 3.0 s", "limit 1 s"]),
    (Limits(1 << 20, 60.0, 1920, 1080, 40, 30.0), ["75 frames", "limit 40"]),
    (Limits(1 << 20, 60.0, 32, 1080, 5000, 30.0), ["64x48", "32x1080"]),
])
def test_declared_limits_reject_before_decoding(h264_video, limits, words):
    with pytest.raises(VideoLimit) as info:
        probe_video(h264_video, limits)
    for word in words:
        assert word in info.value.detail


def test_decode_checks_its_deadline(h264_video):
    meta = probe_video(h264_video, LIMITS)
    tight = Limits(1 << 20, 60.0, 1920, 1080, 5000, decode_timeout_s=1e-9)
    with pytest.raises(DeadlineExceeded, match="longer than"):
        decode_video(h264_video, meta, make_spec(), tight)


def test_decode_counts_frames_the_header_did_not_declare(h264_video):
    meta = probe_video(h264_video, LIMITS)
    lying = Limits(1 << 20, 60.0, 1920, 1080, 10, 30.0)
    with pytest.raises(VideoLimit, match="decodes past the limits"):
        decode_video(h264_video, meta, make_spec(), lying)


def write_sparse_mkv(path: Path, gap_s: float, rate: int = 1000) -> Path:
    """Two frames `gap_s` apart in Matroska (no frame count), declared at `rate` fps."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        for pts in (0, round(gap_s * 1000)):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 90, np.uint8),
                                               format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_variable_rate_file_is_judged_by_its_real_frames(tmp_path):
    path = write_sparse_mkv(tmp_path / "sparse.mkv", gap_s=40.0)
    limits = Limits(1 << 20, 60.0, 1920, 1080, 36_000, 30.0)
    meta = probe_video(path, limits)  # not "40001 frames exceed the limit"
    assert meta.frames_estimated
    assert meta.frames > limits.max_frames  # the estimate, shown but not held against it
    decoded = decode_video(path, meta, make_spec(), limits)
    assert decoded.frames.shape[0] == 401  # 40 s on the 10 fps grid, from 2 real frames
    few = Limits(1 << 20, 60.0, 1920, 1080, 1, 30.0)
    with pytest.raises(VideoLimit, match="decodes past the limits"):  # 2 real frames > 1
        decode_video(path, probe_video(path, few), make_spec(), few)


def _probe_then_decode(path: Path) -> Decoded:
    return decode_video(path, probe_video(path, LIMITS), make_spec(), LIMITS)


@pytest.mark.parametrize("name", [n for n in BAD_MEDIA if n != "empty"])
def test_bad_media_status_and_slug(tmp_path, name):
    write, status, slug = BAD_MEDIA[name]
    path = write(tmp_path)
    with pytest.raises(ServiceError) as info:
        _probe_then_decode(path)
    assert (info.value.status, info.value.slug) == (status, slug), info.value.detail


def test_huge_dimensions_are_rejected_with_value_and_limit(tmp_path):
    path = BAD_MEDIA["huge_dimensions"][0](tmp_path)
    with pytest.raises(VideoLimit, match="10000x10000 exceeds the limit 1920x1080"):
        probe_video(path, LIMITS)


def test_image_and_zero_frame_messages(tmp_path):
    with pytest.raises(ServiceError, match="not an image"):
        probe_video(BAD_MEDIA["png_image"][0](tmp_path), LIMITS)
    with pytest.raises(ServiceError, match="audio only"):
        probe_video(BAD_MEDIA["audio_only"][0](tmp_path), LIMITS)
    zero = BAD_MEDIA["zero_frames"][0](tmp_path)
    assert probe_video(zero, LIMITS).codec == "mpeg4"  # a real video stream ...
    with pytest.raises(Undecodable, match="no decodable frame"):  # ... without frames
        _probe_then_decode(zero)


@pytest.mark.parametrize(("codec", "suffix", "source_fps"), [("mpeg4", "mp4", 30),
                                                            ("libvpx-vp9", "webm", 12)])
def test_windows_equal_training_windows_other_rates(tmp_path, codec, suffix, source_fps):
    path = write_test_video(tmp_path / f"v.{suffix}", seconds=2.5, fps=source_fps, codec=codec)
    spec = make_spec(frames=16, fps=25.0)
    decoded = decode_video(path, probe_video(path, LIMITS), spec, LIMITS)
    seconds = keyframe_times(decoded.meta.duration_s, 1.0)
    np.testing.assert_array_equal(seconds, [0.0, 1.0, 2.0])
    served = clip_windows(decoded, seconds, spec)
    for k, second in enumerate(seconds):
        trained = read_window(path, second, WindowSpec(16, 25.0, 40, 80))
        np.testing.assert_array_equal(served[k], trained)


def test_detector_key_frames_are_kept_near_native_size(h264_video):
    """With a detection rate the key frames (k / rate, as detect_frames picks them) are also
    kept at the native size (long side capped), not the action model's 40 px."""
    spec = make_spec(fps=10.0, short_side=40, max_long_side=80)
    meta = probe_video(h264_video, LIMITS)
    decoded = decode_video(h264_video, meta, spec, LIMITS, detect_rate=2.0)
    assert decoded.frames.shape[1:3] == (40, 53)  # [T,h,w,3] the model's size, padded
    assert len(decoded.frames) == 31  # 0.0 .. 3.0 s at 10 fps
    assert sorted(decoded.detect_frames) == [0, 5, 10, 15, 20, 25, 30]  # every 0.5 s
    for index, frame in decoded.detect_frames.items():
        assert frame.shape == (48, 64, 3)  # native: under the cap
        model = decoded.frames[index, :40, :53].astype(np.float32)
        assert abs(frame.astype(np.float32).mean() - model.mean()) < 8  # same picture
    assert decode_video(h264_video, meta, spec, LIMITS).detect_frames == {}


def test_detector_size_caps_the_long_side():
    from service.decode import DETECT_MAX_SIDE, detector_size

    assert detector_size(1280, 720) == (DETECT_MAX_SIDE, 360)
    assert detector_size(176, 144) == (176, 144)
    assert detector_size(300, 2000) == (96, DETECT_MAX_SIDE)


def test_codec_threads_change_no_pixel(monkeypatch):
    """Real footage (1280x720 h264): threaded decoding gives the single-threaded frames."""
    from service import decode
    from tests.real_footage import video_path

    path = video_path("bigbuckbunny.mp4")
    spec = make_spec(fps=25.0, short_side=128, max_long_side=224)
    limits = Limits(max_upload_bytes=1 << 24, max_duration_s=60.0, max_width=1920,
                    max_height=1080, max_frames=5000, decode_timeout_s=60.0)
    meta = probe_video(path, limits)
    assert decode.CODEC_THREADS == "AUTO"
    threaded = decode_video(path, meta, spec, limits, detect_rate=1.0)
    monkeypatch.setattr(decode, "CODEC_THREADS", "SLICE")
    single = decode_video(path, meta, spec, limits, detect_rate=1.0)
    assert len(threaded.frames) > 100
    np.testing.assert_array_equal(threaded.frames, single.frames)
    assert threaded.detect_frames.keys() == single.detect_frames.keys()
    for k in threaded.detect_frames:
        np.testing.assert_array_equal(threaded.detect_frames[k], single.detect_frames[k])
