"""What every route shares: the service, readiness, API keys, the deadline."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response

from service.app import Service
from service.engine import Answer, Engine
from service.errors import DeadlineExceeded, NotReady
from service.middleware import check_api_key

UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["video"], "properties": {
            "video": {"type": "string", "format": "binary"},
            "boxes": {"type": "string", "description": "JSON person boxes per key frame"},
            "min_score": {"type": "number"}, "top_k": {"type": "integer"},
            "labels": {"type": "string"}, "format": {"type": "string"},
            "clip_index": {"type": "integer"}, "start_s": {"type": "number"}}}},
        "video/*": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}


def _query(name: str, kind: str, text: str) -> dict[str, object]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": kind},
            "description": text}


DETECT_QUERY = [
    _query("boxes", "string", 'person boxes per key frame, JSON: [{"timestamp": 1.0, '
           '"boxes": [[x1, y1, x2, y2], ...]}], coordinates normalised to [0,1]; their '
           "timestamps are the key frames (seconds from the start of the upload)"),
    _query("min_score", "number", "drop actions scoring below this (default 0.1)"),
    _query("top_k", "integer", "at most this many actions per person (default 5)"),
    _query("labels", "string", "comma-separated allow-list of action ids or names"),
    _query("format", "string", "json (default) or ava_csv"),
]
CLIP_QUERY = [
    _query("clip_index", "integer", "required: 0, 1, 2, ... in the session's order"),
    _query("start_s", "number", "start of the clip in session seconds (default clip_index x "
           "this clip's duration)"),
    *DETECT_QUERY,
]


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def require_key(request: Request) -> None:
    check_api_key(request, service_of(request).settings.api_key_hashes)


def ready_engine(request: Request) -> Engine:
    service = service_of(request)
    if not service.ready or service.engine is None:
        raise NotReady("the model is still loading or the service is draining; retry "
                       "(GET /health/ready says when)", headers={"Retry-After": "1"})
    return service.engine


AuthDep = Depends(require_key)
ReadyEngine = Annotated[Engine, Depends(ready_engine)]


@contextlib.asynccontextmanager
async def deadline(seconds: float) -> AsyncIterator[None]:
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise DeadlineExceeded(f"the request took longer than {seconds:g} s; send a shorter "
                               "video or retry when the service is less busy") from None


def answer_response(answer: Answer, status_code: int = 200) -> Response:
    return Response(answer.body, status_code=status_code, media_type=answer.media_type,
                    headers=answer.headers)
