"""Request body -> a temp file on disk, streamed with a running byte count.

Accepts a raw body (video/*, application/octet-stream) or multipart/form-data whose file
part is named "video" (or "file"); multipart is parsed while it streams, so the file part
goes to disk as it arrives and the size limit cuts the upload off without reading the rest.
The limit counts request body bytes (for multipart, boundaries and small fields included).
On any error the temp file is removed.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from service.decode import Limits
from service.errors import BadRequest, EmptyBody, PayloadTooLarge, Unprocessable, UnsupportedMedia

VIDEO_FIELDS = ("video", "file")  # multipart part names that carry the video
MAX_FIELD_BYTES = 1024 * 1024  # default for each small text field (AIA_MAX_FIELD_BYTES)
ACCEPTED = "video/*, application/octet-stream or multipart/form-data (field 'video')"


@dataclass(frozen=True)
class Upload:
    path: Path
    size: int  # bytes of the video file
    content_type: str
    fields: dict[str, str] = field(default_factory=dict)


class _Counter:
    """Running count of body bytes against the upload limit."""

    def __init__(self, limit: int) -> None:
        self.limit, self.total = limit, 0

    def add(self, n: int) -> None:
        self.total += n
        if self.total > self.limit:
            raise PayloadTooLarge(f"the upload exceeds the limit of {self.limit} bytes; "
                                  f"send a shorter or smaller video")


class _MultipartSink:
    """python-multipart callbacks: the video part to `file`, other parts to small strings."""

    def __init__(self, file: IO[bytes], max_field_bytes: int) -> None:
        self.file = file
        self.max_field_bytes = max_field_bytes
        self.video_bytes = 0
        self.has_video = False
        self.finished = False  # the closing boundary arrived
        self.fields: dict[str, str] = {}
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._target: str | None = None  # "video", a field name, or None (ignored part)
        self._buffer = bytearray()

    def callbacks(self) -> dict[str, object]:
        return {"on_part_begin": self._begin, "on_header_field": self._field,
                "on_header_value": self._value, "on_header_end": self._header_end,
                "on_headers_finished": self._headers_done, "on_part_data": self._data,
                "on_part_end": self._end, "on_end": self._finish}

    def _begin(self) -> None:
        self._headers, self._target, self._buffer = {}, None, bytearray()

    def _field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_name.strip().lower()] = self._header_value.strip()
        self._header_name, self._header_value = b"", b""

    def _headers_done(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name in VIDEO_FIELDS:
            # a second video part would be appended to the first: two halves of a file
            # must not decode as one video
            if self.has_video:
                raise Unprocessable("the multipart upload has more than one video part; send "
                                    "exactly one file in the form field 'video'")
            self._target, self.has_video = "video", True
        elif name in self.fields:
            raise Unprocessable(f"form field '{name}' appears more than once; send it once")
        elif name:
            self._target = name

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._target == "video":
            self.file.write(data[start:end])
            self.video_bytes += end - start
        elif self._target is not None:
            self._buffer += data[start:end]
            if len(self._buffer) > self.max_field_bytes:
                raise PayloadTooLarge(f"form field '{self._target}' exceeds "
                                      f"{self.max_field_bytes} bytes (AIA_MAX_FIELD_BYTES)")

    def _end(self) -> None:
        if self._target not in (None, "video"):
            self.fields[self._target] = self._buffer.decode("utf-8", "replace")

    def _finish(self) -> None:
        self.finished = True


def _media_type(request: Request) -> tuple[str, dict[bytes, bytes]]:
    raw = request.headers.get("content-type", "")
    kind, options = parse_options_header(raw)
    return kind.decode("latin-1").lower(), options


def _check_declared_length(request: Request, limit: int) -> None:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"the upload ({length} bytes) exceeds the limit of {limit} "
                              f"bytes; send a shorter or smaller video")


async def _receive_raw(request: Request, file: IO[bytes], counter: _Counter) -> dict[str, str]:
    async for chunk in request.stream():
        counter.add(len(chunk))
        file.write(chunk)
    return {}


async def _receive_multipart(request: Request, boundary: bytes, file: IO[bytes],
                             counter: _Counter, max_field_bytes: int) -> tuple[int, dict[str, str]]:
    sink = _MultipartSink(file, max_field_bytes)
    parser = MultipartParser(boundary, sink.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            counter.add(len(chunk))
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as err:
        raise BadRequest(f"malformed multipart body ({err}); let the client library build "
                         f"it") from err
    if not sink.finished:
        # a cut-off body (client gone, proxy truncation) must not be answered as if whole
        raise BadRequest("the multipart body ends before its closing boundary; send the whole "
                         "body (let the client library build it)")
    if not sink.has_video:
        raise Unprocessable("the multipart upload has no video part; send the video as a "
                            "file in the form field 'video'")
    return sink.video_bytes, sink.fields


async def receive_upload(request: Request, limits: Limits, folder: Path,
                         max_field_bytes: int = MAX_FIELD_BYTES) -> Upload:
    """Stream the body to a temp file in `folder`; PayloadTooLarge the moment it crosses.

    Multipart bodies carry exactly one video part and end with their closing boundary.
    """
    media_type, options = _media_type(request)
    is_multipart = media_type == "multipart/form-data"
    if not (is_multipart or media_type.startswith("video/")
            or media_type == "application/octet-stream"):
        raise UnsupportedMedia(f"content type '{media_type or 'none'}' is not accepted; "
                               f"send {ACCEPTED}")
    boundary = options.get(b"boundary", b"")
    if is_multipart and not boundary:
        raise BadRequest("multipart/form-data without a boundary; let the client library "
                         "build the multipart body")
    _check_declared_length(request, limits.max_upload_bytes)
    counter = _Counter(limits.max_upload_bytes)
    file = tempfile.NamedTemporaryFile(dir=folder, prefix="upload-", delete=False)  # noqa: SIM115
    path = Path(file.name)
    try:
        with file:
            if is_multipart:
                size, fields = await _receive_multipart(request, boundary, file, counter,
                                                        max_field_bytes)
            else:
                fields = await _receive_raw(request, file, counter)
                size = counter.total
        if size == 0:
            raise EmptyBody("the upload holds no video bytes; send the video file")
        return Upload(path, size, media_type, fields)
    except BaseException:
        path.unlink(missing_ok=True)
        raise

