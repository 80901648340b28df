"""Real media files for service tests, written with PyAV: good videos and every bad input.

Each `write_*` function writes one file into `folder` and returns its path. The HTTP
bad-input table reuses `BAD_MEDIA` (name -> writer) with the expected status and slug.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

CODEC_FORMATS = {"libx264": "mp4", "mpeg4": "mp4", "libvpx-vp9": "webm"}


def frame_pattern(index: int, width: int, height: int) -> np.ndarray:
    """uint8 [h,w,3]: a frame that differs from its neighbours (a moving bar, a red ramp)."""
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    frame[..., 0] = (index * 7) % 256
    frame[:, index % width, 1] = 255
    return frame


def write_test_video(path: Path, seconds: float = 2.0, fps: int = 25,
                     size: tuple[int, int] = (64, 48), codec: str = "libx264") -> Path:
    """A tiny real video (w, h = size); the container comes from the file suffix."""
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(round(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(frame_pattern(i, width, height), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_empty(folder: Path) -> Path:
    path = folder / "empty.mp4"
    path.write_bytes(b"")
    return path


def write_random_bytes(folder: Path) -> Path:
    path = folder / "random.bin"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


def write_truncated_mp4(folder: Path) -> Path:
    """An h264 mp4 cut in half: the moov index at the end is gone."""
    whole = write_test_video(folder / "whole.mp4")
    data = whole.read_bytes()
    path = folder / "truncated.mp4"
    path.write_bytes(data[: len(data) // 2])
    os.remove(whole)
    return path


def png_bytes(width: int = 64, height: int = 48) -> bytes:
    """A valid RGB PNG (black), built by hand so no imaging library is needed."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    rows = b"".join(b"\x00" + bytes(width * 3) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def write_png(folder: Path) -> Path:
    path = folder / "image.png"
    path.write_bytes(png_bytes())
    return path


def write_audio_only(folder: Path) -> Path:
    """Half a second of AAC silence in an .m4a (an mp4 without a video track)."""
    path = folder / "audio.m4a"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for _ in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                               layout="mono")
            frame.sample_rate = 16000
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_huge_dimensions(folder: Path, width: int = 10000, height: int = 10000) -> Path:
    """A YUV4MPEG2 header declaring a huge frame and no frame data (FFmpeg reports the size)."""
    path = folder / "huge.y4m"
    path.write_bytes(f"YUV4MPEG2 W{width} H{height} F25:1 Ip A1:1 C420jpeg\n".encode())
    return path


def write_zero_frames(folder: Path) -> Path:
    """An AVI with an MPEG-4 video stream and no packets."""
    path = folder / "zero.avi"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    return path


# name -> (writer, expected HTTP status, expected problem slug) when uploaded as a video
BAD_MEDIA: dict[str, tuple[Callable[[Path], Path], int, str]] = {
    "empty": (write_empty, 400, "empty-body"),
    "random_bytes": (write_random_bytes, 415, "unsupported-media"),
    "truncated_mp4": (write_truncated_mp4, 422, "undecodable-video"),
    "png_image": (write_png, 415, "unsupported-media"),
    "audio_only": (write_audio_only, 415, "unsupported-media"),
    "huge_dimensions": (write_huge_dimensions, 422, "video-limit"),
    "zero_frames": (write_zero_frames, 422, "undecodable-video"),
}
