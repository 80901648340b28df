"""Sessions: a stream of clips under one id, with memory kept in the store between them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Body, Path, Request
from fastapi.responses import JSONResponse, Response

from service.deps import AuthDep, ReadyEngine, ReadyStore, ServiceDep, answer_upload
from service.engine import Answer
from service.errors import NotReady, SessionNotFound
from service.params import clip_params, detect_params
from service.routes.openapi import CLIP_QUERY, SESSION_PROBLEMS, UPLOAD_BODY
from service.schemas import SESSION_ID_PATTERN, ClipResponse, SessionCreate, SessionInfo
from service.store import SessionRecord, StoreUnavailable

router = APIRouter(prefix="/v1/sessions", tags=["sessions"], dependencies=[AuthDep])
SessionId = Annotated[str, Path(pattern=SESSION_ID_PATTERN, description="the session id")]


def info(record: SessionRecord) -> SessionInfo:
    return SessionInfo(id=record.id, created_at=record.created_at, ttl_s=record.ttl_s,
                       lookahead_s=record.lookahead_s, model_version=record.model_version,
                       clips_seen=record.clips_seen, last_index=record.last_index,
                       seen=list(record.seen), memory_seconds=record.stored_seconds)


def store_down() -> NotReady:
    return NotReady("the memory store is unavailable; retry shortly",
                    headers={"Retry-After": "1"})


@router.post("", status_code=201, response_model=SessionInfo, responses=SESSION_PROBLEMS,
             summary="Create a session (server-chosen id unless given)")
async def create_session(service: ServiceDep, store: ReadyStore,
                         body: Annotated[SessionCreate | None, Body()] = None) -> JSONResponse:
    settings = service.settings
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


@router.get("/{session_id}", response_model=SessionInfo, responses=SESSION_PROBLEMS,
            summary="Clips seen, last index, memory size, model version")
async def get_session(store: ReadyStore, session_id: SessionId) -> SessionInfo:
    try:
        record = await store.get_session(session_id)
    except StoreUnavailable:
        raise store_down() from None
    if record is None:
        raise SessionNotFound(f"session {session_id!r} does not exist or expired")
    return info(record)


@router.delete("/{session_id}", status_code=204, responses=SESSION_PROBLEMS,
               summary="Delete a session and purge its memory at once")
async def delete_session(store: ReadyStore, session_id: SessionId) -> Response:
    try:
        deleted = await store.delete_session(session_id)
    except StoreUnavailable:
        raise store_down() from None
    if not deleted:
        raise SessionNotFound(f"session {session_id!r} does not exist or expired")
    return Response(status_code=204)


@router.post("/{session_id}/clips", response_model=ClipResponse,
             responses={200: {"content": {"text/csv": {}}}, **SESSION_PROBLEMS},
             openapi_extra={"requestBody": UPLOAD_BODY, "parameters": CLIP_QUERY},
             summary="The session's next clip: actions with the session's past as memory")
async def post_clip(request: Request, session_id: SessionId, service: ServiceDep,
                    engine: ReadyEngine) -> Response:
    async def answer(video: FilePath, values: Mapping[str, str]) -> Answer:
        clip = clip_params(values)
        params = detect_params(values, engine.served.artifact.labels,
                               engine.options.bounds)
        return await engine.session_clip(session_id, video, clip, params)

    return await answer_upload(request, service, answer)
