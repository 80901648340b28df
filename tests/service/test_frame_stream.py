"""service.frame_stream: the same windows and detector pictures as decoding the whole video,
with only the frames pending key frames need kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.decode import Limits, clip_windows, decode_video, keyframe_times, probe_video
from service.errors import Undecodable
from service.frame_stream import FrameStream
from tests.service.media import write_test_video
from tests.service.test_decode import make_spec

LIMITS = Limits(max_upload_bytes=1 << 24, max_duration_s=600.0, max_width=1920,
                max_height=1080, max_frames=50_000, decode_timeout_s=60.0)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_test_video(tmp_path_factory.mktemp("stream") / "v.mp4", seconds=12.0,
                            fps=25, size=(64, 48))


@pytest.mark.parametrize("spec_fps", [10.0, 25.0, 30.0])
def test_windows_equal_whole_video_decoding(video: Path, spec_fps: float) -> None:
    spec = make_spec(frames=8, fps=spec_fps)
    meta = probe_video(video, LIMITS)
    whole = decode_video(video, meta, spec, LIMITS)
    # client times: off the grid, duplicated, at both ends and past the end
    times = np.array([0.0, 0.013, 0.5, 0.5, 3.37, 7.0, 11.9, 12.2])
    with FrameStream(video, meta, spec, LIMITS, times) as stream:
        got = [stream.windows(times[i:i + 3]) for i in range(0, len(times), 3)]
    np.testing.assert_array_equal(np.concatenate(got), clip_windows(whole, times, spec))


def test_batches_release_frames_and_memory_stays_bounded(video: Path) -> None:
    spec = make_spec(frames=8, fps=25.0)
    meta = probe_video(video, LIMITS)
    whole = decode_video(video, meta, spec, LIMITS)
    times = np.array([1.0, 2.0, 6.0, 10.0, 11.0])
    most = 0
    with FrameStream(video, meta, spec, LIMITS, times) as stream:
        for i, t in enumerate(times):
            window = stream.windows(times[i:i + 1])
            np.testing.assert_array_equal(window, clip_windows(whole, times[i:i + 1], spec))
            most = max(most, len(stream._frames))
            stream.release(t)
        assert len(stream._frames) == 0
    assert most <= spec.frames + 1  # one window's frames, never the 12 s grid (300 frames)


def test_open_ended_key_frames_match_the_decoded_duration(video: Path) -> None:
    spec = make_spec(frames=8, fps=10.0)
    meta = probe_video(video, LIMITS)
    whole = decode_video(video, meta, spec, LIMITS, detect_rate=1.0)
    expected = keyframe_times(len(whole.times) / spec.fps, 1.0)
    taken, pictures = [], []
    with FrameStream(video, meta, spec, LIMITS, None, rate=1.0,
                     detector_pictures=True) as stream:
        while len(batch := stream.take(5)):
            taken.append(batch)
            pictures += stream.detector_pictures(batch)
            np.testing.assert_array_equal(stream.windows(batch),
                                          clip_windows(whole, batch, spec))
            stream.release(float(batch[-1]))
        assert stream.ended
        assert stream.duration_s == pytest.approx(len(whole.times) / spec.fps)
    np.testing.assert_array_equal(np.concatenate(taken), expected)
    for t, picture in zip(expected, pictures, strict=True):
        np.testing.assert_array_equal(picture, whole.detect_frames[round(t * spec.fps)])


def test_reach_decodes_on_without_keeping(video: Path) -> None:
    spec = make_spec(frames=8, fps=10.0)
    meta = probe_video(video, LIMITS)
    with FrameStream(video, meta, spec, LIMITS, [1.0]) as stream:
        stream.windows(np.array([1.0]))
        stream.release(1.0)
        stream.reach(30.0)
        assert stream.ended
        assert stream._frames == {}
        assert stream.duration_s == pytest.approx(12.0, abs=0.11)


def test_a_file_without_frames_is_undecodable(tmp_path: Path) -> None:
    spec = make_spec()
    video = write_test_video(tmp_path / "v.mp4", seconds=1.0, size=(64, 48))
    meta = probe_video(video, LIMITS)
    with FrameStream(video, meta, spec, LIMITS, None, rate=1.0) as stream:
        stream._source.close()
        stream._source = (frame for frame in ())  # a container whose stream yields nothing
        with pytest.raises(Undecodable):
            stream.take(1)


def test_decoding_stops_at_the_last_window_asked_for(video: Path) -> None:
    spec = make_spec(frames=8, fps=10.0)
    meta = probe_video(video, LIMITS)
    with FrameStream(video, meta, spec, LIMITS, [1.0]) as stream:
        stream.windows(np.array([1.0]))
        assert not stream.ended
        assert stream.duration_s < 2.0  # of the 12 s video: the rest is never decoded


def test_close_waits_for_a_decode_running_in_another_thread(video: Path) -> None:
    """A request cancelled by its deadline closes its stream while a worker thread is still
    decoding: close waits for that call instead of failing on a running generator."""
    import threading
    import time

    spec = make_spec(frames=8, fps=10.0)
    meta = probe_video(video, LIMITS)
    stream = FrameStream(video, meta, spec, LIMITS, [5.0])
    real = stream._source

    def slow():
        for item in real:
            time.sleep(0.01)
            yield item

    stream._source = slow()
    worker = threading.Thread(target=stream.windows, args=(np.array([5.0]),))
    worker.start()
    time.sleep(0.1)  # the worker is inside the generator
    stream.close()  # must not raise "generator already executing"
    assert not worker.is_alive()
    real.close()
