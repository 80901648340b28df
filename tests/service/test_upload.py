"""receive_upload behind a minimal Starlette app, driven through httpx's ASGI transport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from service.decode import Limits
from service.errors import ServiceError
from service.upload import MAX_FIELD_BYTES, receive_upload
from tests.service.media import png_bytes, write_test_video

LIMIT = 64 * 1024


def make_app(folder: Path, limit: int = LIMIT) -> Starlette:
    limits = Limits(max_upload_bytes=limit, max_duration_s=60.0, max_width=1920,
                    max_height=1080, max_frames=5000, decode_timeout_s=30.0)

    async def upload(request: Request) -> JSONResponse:
        try:
            got = await receive_upload(request, limits, folder)
        except ServiceError as err:
            return JSONResponse(err.problem(), status_code=err.status)
        return JSONResponse({"size": got.size, "content_type": got.content_type,
                             "fields": got.fields, "bytes": got.path.read_bytes().hex()})

    return Starlette(routes=[Route("/upload", upload, methods=["POST"])])


def post(app: Starlette, **kwargs: object) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post("/upload", **kwargs)  # type: ignore[arg-type]
    return asyncio.run(go())


@pytest.fixture(scope="module")
def video_bytes(tmp_path_factory) -> bytes:
    return write_test_video(tmp_path_factory.mktemp("v") / "v.mp4", seconds=1.0).read_bytes()


@pytest.fixture
def folder(tmp_path) -> Path:
    path = tmp_path / "uploads"
    path.mkdir()
    return path


@pytest.mark.parametrize("content_type", ["video/mp4", "application/octet-stream",
                                          "video/webm; codecs=vp9"])
def test_raw_body_lands_on_disk(folder, video_bytes, content_type):
    response = post(make_app(folder), content=video_bytes,
                    headers={"content-type": content_type})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["size"] == len(video_bytes)
    assert bytes.fromhex(body["bytes"]) == video_bytes
    assert body["content_type"] == content_type.split(";")[0]
    assert len(list(folder.iterdir())) == 1  # the caller owns (and removes) the file


@pytest.mark.parametrize("field", ["video", "file"])
def test_multipart_video_and_fields(folder, video_bytes, field):
    boxes = '[{"timestamp": 1.0, "boxes": [[0.1, 0.1, 0.5, 0.9]]}]'
    response = post(make_app(folder), files={field: ("clip.mp4", video_bytes, "video/mp4")},
                    data={"boxes": boxes, "note": "x"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert bytes.fromhex(body["bytes"]) == video_bytes
    assert body["size"] == len(video_bytes)
    assert body["fields"] == {"boxes": boxes, "note": "x"}
    assert body["content_type"] == "multipart/form-data"


def _problem(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["type"].rsplit("/", 1)[-1]


@pytest.mark.parametrize(("content_type", "payload"), [
    ("image/png", png_bytes()), ("text/plain", b"hello"), ("application/json", b"{}"),
    ("application/x-www-form-urlencoded", b"a=b"),
])
def test_other_content_types_are_415(folder, content_type, payload):
    response = post(make_app(folder), content=payload, headers={"content-type": content_type})
    assert _problem(response) == (415, "unsupported-media")
    assert "video/*" in response.json()["detail"]
    assert list(folder.iterdir()) == []


def test_missing_content_type_is_415(folder):
    response = post(make_app(folder), content=b"abc")  # httpx sends no content type for bytes
    assert _problem(response) == (415, "unsupported-media")
    assert "'none'" in response.json()["detail"]


def test_empty_bodies_are_400(folder):
    assert _problem(post(make_app(folder), content=b"",
                         headers={"content-type": "video/mp4"})) == (400, "empty-body")
    response = post(make_app(folder), files={"video": ("v.mp4", b"", "video/mp4")})
    assert _problem(response) == (400, "empty-body")
    assert list(folder.iterdir()) == []


def test_multipart_without_video_part_says_which_field(folder):
    response = post(make_app(folder), files={"clip": ("v.mp4", b"abc", "video/mp4")})
    assert _problem(response) == (422, "unprocessable")
    assert "'video'" in response.json()["detail"]
    assert list(folder.iterdir()) == []


def test_oversized_field_is_413(folder, video_bytes):
    response = post(make_app(folder, limit=4 * MAX_FIELD_BYTES),
                    files={"video": ("v.mp4", video_bytes, "video/mp4")},
                    data={"boxes": "x" * (MAX_FIELD_BYTES + 1)})
    assert _problem(response) == (413, "payload-too-large")
    assert "boxes" in response.json()["detail"]
    assert list(folder.iterdir()) == []


class Chunks:
    """A streamed request body that records how much of it the server pulled."""

    def __init__(self, count: int, size: int) -> None:
        self.count, self.size, self.pulled = count, size, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.count):
            self.pulled += 1
            yield b"\0" * self.size


def test_limit_stops_reading_a_streamed_body(folder):
    body = Chunks(count=100, size=16 * 1024)  # 1.6 MB against a 64 kB limit
    response = post(make_app(folder), content=body, headers={"content-type": "video/mp4"})
    assert _problem(response) == (413, "payload-too-large")
    assert str(LIMIT) in response.json()["detail"]
    assert body.pulled <= 6  # 5 chunks cross the limit; the rest is never read
    assert list(folder.iterdir()) == []


def test_limit_applies_inside_multipart_while_streaming(folder):
    async def multipart() -> AsyncIterator[bytes]:
        yield (b'--XyZ\r\nContent-Disposition: form-data; name="video"; filename="v.mp4"\r\n'
               b"Content-Type: video/mp4\r\n\r\n")
        for _ in range(100):
            yield b"\1" * 16 * 1024
        yield b"\r\n--XyZ--\r\n"
    response = post(make_app(folder), content=multipart(),
                    headers={"content-type": "multipart/form-data; boundary=XyZ"})
    assert _problem(response) == (413, "payload-too-large")
    assert list(folder.iterdir()) == []


def test_declared_content_length_rejects_before_reading(folder):
    body = Chunks(count=1, size=10)
    response = post(make_app(folder), content=body,
                    headers={"content-type": "video/mp4", "content-length": str(LIMIT + 1)})
    assert _problem(response) == (413, "payload-too-large")
    assert body.pulled == 0
    assert list(folder.iterdir()) == []


def test_malformed_multipart_is_400(folder):
    response = post(make_app(folder), content=b"not multipart at all",
                    headers={"content-type": "multipart/form-data; boundary=XyZ"})
    assert _problem(response) == (400, "bad-request")
    assert list(folder.iterdir()) == []
    response = post(make_app(folder), content=b"abc",
                    headers={"content-type": "multipart/form-data"})
    assert _problem(response) == (400, "bad-request")


def _multipart(*parts: tuple[str, bytes], close: bool = True) -> bytes:
    body = b""
    for name, data in parts:
        body += (b"--XyZ\r\nContent-Disposition: form-data; name=\"" + name.encode()
                 + b"\"; filename=\"v.mp4\"\r\nContent-Type: video/mp4\r\n\r\n" + data + b"\r\n")
    return body + (b"--XyZ--\r\n" if close else b"")


MULTIPART = {"content-type": "multipart/form-data; boundary=XyZ"}


def test_two_video_parts_are_422_not_one_joined_file(folder, video_bytes):
    half = len(video_bytes) // 2
    for second in ("video", "file"):
        body = _multipart(("video", video_bytes[:half]), (second, video_bytes[half:]))
        response = post(make_app(folder), content=body, headers=MULTIPART)
        assert _problem(response) == (422, "unprocessable")
        assert "more than one video part" in response.json()["detail"]
        assert list(folder.iterdir()) == []


def test_repeated_form_field_is_422(folder, video_bytes):
    response = post(make_app(folder), content=_multipart(
        ("video", video_bytes), ("boxes", b"[]"), ("boxes", b"[]")), headers=MULTIPART)
    assert _problem(response) == (422, "unprocessable")
    assert "'boxes'" in response.json()["detail"]


def test_missing_closing_boundary_is_400(folder, video_bytes):
    body = _multipart(("video", video_bytes), close=False)
    response = post(make_app(folder), content=body, headers=MULTIPART)
    assert _problem(response) == (400, "bad-request")
    assert "closing boundary" in response.json()["detail"]
    assert list(folder.iterdir()) == []
    whole = post(make_app(folder), content=_multipart(("video", video_bytes)), headers=MULTIPART)
    assert whole.status_code == 200, whole.text
    assert bytes.fromhex(whole.json()["bytes"]) == video_bytes


def test_field_limit_is_a_parameter(folder, video_bytes):
    limits = Limits(max_upload_bytes=LIMIT, max_duration_s=60.0, max_width=1920,
                    max_height=1080, max_frames=5000, decode_timeout_s=30.0)

    async def upload(request: Request) -> JSONResponse:
        try:
            await receive_upload(request, limits, folder, max_field_bytes=10)
        except ServiceError as err:
            return JSONResponse(err.problem(), status_code=err.status)
        return JSONResponse({})

    app = Starlette(routes=[Route("/upload", upload, methods=["POST"])])
    response = post(app, files={"video": ("v.mp4", video_bytes[:100], "video/mp4")},
                    data={"boxes": "x" * 11})
    assert _problem(response) == (413, "payload-too-large")
    assert "10 bytes" in response.json()["detail"]
