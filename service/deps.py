"""What routes depend on: the service state, readiness, API keys, the deadline, and the one
upload -> parameters -> engine -> answer sequence both upload routes share. Routes import
this module, never `service.app`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response

from service.engine import Answer, Engine
from service.errors import NotReady
from service.middleware import check_api_key
from service.state import Service
from service.store import MemoryStore
from service.upload import receive_upload


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


def ready_store(request: Request) -> MemoryStore:
    store = service_of(request).store
    if store is None:
        raise NotReady("the service is starting; retry", headers={"Retry-After": "1"})
    return store


AuthDep = Depends(require_key)
ServiceDep = Annotated[Service, Depends(service_of)]
ReadyEngine = Annotated[Engine, Depends(ready_engine)]
ReadyStore = Annotated[MemoryStore, Depends(ready_store)]


# the route's part: the uploaded file and every parameter (query and form) -> the answer
AnswerUpload = Callable[[Path, Mapping[str, str]], Awaitable[Answer]]


async def answer_upload(request: Request, service: Service, answer: AnswerUpload) -> Response:
    """Receive the upload within the deadline, answer it, always remove the temp file."""
    assert service.upload_dir is not None
    async with service.cutoff.deadline(service.settings.request_timeout_s):
        upload = await receive_upload(request, service.limits, service.upload_dir,
                                      service.settings.max_field_bytes)
        try:
            result = await answer(upload.path, {**request.query_params, **upload.fields})
        finally:
            upload.path.unlink(missing_ok=True)
    return Response(result.body, media_type=result.media_type, headers=result.headers)
