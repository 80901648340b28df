"""Sessions: a stream of clips under one id, with memory kept in the store between them."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Path, Request
from fastapi.responses import JSONResponse, Response

from service.errors import NotReady, SessionNotFound
from service.params import clip_params, detect_params
from service.routes.common import (
    CLIP_QUERY,
    UPLOAD_BODY,
    AuthDep,
    ReadyEngine,
    answer_response,
    deadline,
    service_of,
)
from service.routes.detect import PROBLEMS
from service.schemas import SESSION_ID_PATTERN, ClipResponse, SessionCreate, SessionInfo
from service.store import MemoryStore, SessionRecord, StoreUnavailable
from service.upload import receive_upload

router = APIRouter(prefix="/v1/sessions", tags=["sessions"], dependencies=[AuthDep])
SessionId = Annotated[str, Path(pattern=SESSION_ID_PATTERN, description="the session id")]


def store_of(request: Request) -> MemoryStore:
    store = service_of(request).store
    if store is None:
        raise NotReady("the service is starting; retry", headers={"Retry-After": "1"})
    return store


def info(record: SessionRecord) -> SessionInfo:
    return SessionInfo(id=record.id, created_at=record.created_at, ttl_s=record.ttl_s,
                       lookahead_s=record.lookahead_s, model_version=record.model_version,
                       clips_seen=record.clips_seen, last_index=record.last_index,
                       seen=list(record.seen), memory_seconds=record.memory_seconds)


def store_down() -> NotReady:
    return NotReady("the memory store is unavailable; retry shortly",
                    headers={"Retry-After": "1"})


@router.post("", status_code=201, response_model=SessionInfo, responses=PROBLEMS,
             summary="Create a session (server-chosen id unless given)")
async def create_session(request: Request,
                         body: Annotated[SessionCreate | None, Body()] = None) -> JSONResponse:
    settings, store = service_of(request).settings, store_of(request)
    body = body or SessionCreate()
    session = body.id or uuid.uuid4().hex
    try:
        record = await store.create_session(session, body.ttl_s or settings.session_ttl_s,
                                            settings.lookahead_s if body.lookahead_s is None
                                            else body.lookahead_s)
    except StoreUnavailable:
        raise store_down() from None
    return JSONResponse(info(record).model_dump(), status_code=201,
                        headers={"Location": f"/v1/sessions/{session}"})


@router.get("/{session_id}", response_model=SessionInfo, responses=PROBLEMS,
            summary="Clips seen, last index, memory size, model version")
async def get_session(request: Request, session_id: SessionId) -> SessionInfo:
    try:
        record = await store_of(request).get_session(session_id)
    except StoreUnavailable:
        raise store_down() from None
    if record is None:
        raise SessionNotFound(f"session {session_id!r} does not exist or expired")
    return info(record)


@router.delete("/{session_id}", status_code=204, responses=PROBLEMS,
               summary="Delete a session and purge its memory at once")
async def delete_session(request: Request, session_id: SessionId) -> Response:
    try:
        deleted = await store_of(request).delete_session(session_id)
    except StoreUnavailable:
        raise store_down() from None
    if not deleted:
        raise SessionNotFound(f"session {session_id!r} does not exist or expired")
    return Response(status_code=204)


@router.post("/{session_id}/clips", response_model=ClipResponse,
             responses={200: {"content": {"text/csv": {}}}, **PROBLEMS},
             openapi_extra={"requestBody": UPLOAD_BODY, "parameters": CLIP_QUERY},
             summary="The session's next clip: actions with the session's past as memory")
async def post_clip(request: Request, session_id: SessionId,
                    engine: ReadyEngine) -> Response:
    service = service_of(request)
    assert service.upload_dir is not None
    assert service.artifact is not None
    async with deadline(service.settings.request_timeout_s):
        upload = await receive_upload(request, service.limits, service.upload_dir)
        try:
            values = {**request.query_params, **upload.fields}
            clip = clip_params(values)
            params = detect_params(values, service.artifact.labels, service.settings.max_persons)
            answer = await engine.session_clip(session_id, upload.path, clip, params)
        finally:
            upload.path.unlink(missing_ok=True)
    return answer_response(answer)
