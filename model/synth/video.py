"""Writing (and reading back) the synthetic mp4s with PyAV: H.264 through libx264 when this
FFmpeg has it, MPEG-4 part 2 otherwise.

The same frames must give the same file. Encoding runs in one thread with fixed settings, and
x264's macroblock-tree rate control is off: with it on (x264's default), encoding the same
frames twice in one process was seen to give different streams, now and then.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

CODECS = {"h264": "libx264", "mpeg4": "mpeg4"}  # our name -> FFmpeg encoder
H264_CRF = 17  # near-transparent: coding noise must not carry label information
MPEG4_BITRATE_PER_PIXEL = 120  # bits per pixel per second: about 3 Mbit/s at 192x128


class VideoWriteError(RuntimeError):
    """An encoder is missing or failed; the message names the file or the codec."""


def available_codecs() -> list[str]:
    return [name for name, encoder in CODECS.items() if encoder in av.codecs_available]


def choose_codec(requested: str) -> str:
    """'auto' -> h264 if libx264 is there, else mpeg4; an explicit name must be available."""
    have = available_codecs()
    if requested == "auto":
        if not have:
            raise VideoWriteError(f"this FFmpeg (PyAV {av.__version__}) has neither libx264 "
                                  "nor mpeg4 encoders")
        return have[0]
    if requested not in CODECS:
        raise VideoWriteError(f"codec {requested!r}: must be one of {['auto', *CODECS]}")
    if requested not in have:
        raise VideoWriteError(f"codec {requested!r}: FFmpeg encoder {CODECS[requested]!r} "
                              f"is not available; available: {have}")
    return requested


def _stream(container: av.container.OutputContainer, codec: str, fps: float, width: int,
            height: int) -> av.video.stream.VideoStream:
    stream = container.add_stream(CODECS[codec], rate=Fraction(fps).limit_denominator(1001))
    stream.width, stream.height = width, height
    stream.pix_fmt = "yuv420p"
    stream.gop_size = max(round(fps), 1)  # a key frame every second: cheap random access
    stream.thread_count = 1
    if codec == "h264":
        stream.options = {"crf": str(H264_CRF), "preset": "veryfast", "threads": "1",
                          "x264-params": "mbtree=0"}
    else:
        stream.bit_rate = MPEG4_BITRATE_PER_PIXEL * width * height
    return stream


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float, codec: str,
                width: int, height: int) -> int:
    """Encode RGB uint8 frames [H,W,3] to `path` (atomically: temp file, then rename).
    Returns the number of frames."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    count = 0
    try:
        with av.open(tmp, "w", format="mp4") as container:
            stream = _stream(container, codec, fps, width, height)
            for image in frames:
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = count
                container.mux(stream.encode(frame))
                count += 1
            container.mux(stream.encode())
        os.replace(tmp, path)
    except av.FFmpegError as err:
        raise VideoWriteError(f"{path}: encoding with {CODECS[codec]} failed: {err}") from err
    finally:
        Path(tmp).unlink(missing_ok=True)
    return count


def read_video(path: str | Path) -> np.ndarray:
    """All frames of a video as uint8 [T,H,W,3] RGB."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
