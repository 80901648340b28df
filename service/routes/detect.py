"""POST /v1/detect: a clip or a whole video, answered offline (past and future memory)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service.params import detect_params
from service.routes.common import (
    DETECT_QUERY,
    UPLOAD_BODY,
    AuthDep,
    ReadyEngine,
    answer_response,
    deadline,
    service_of,
)
from service.schemas import DetectResponse, Problem
from service.upload import receive_upload

router = APIRouter(prefix="/v1", tags=["detect"], dependencies=[AuthDep])
PROBLEMS = {code: {"model": Problem, "content": {"application/problem+json": {}}}
            for code in (400, 401, 413, 415, 422, 429, 503, 504)}


@router.post("/detect", response_model=DetectResponse,
             responses={200: {"content": {"text/csv": {}}}, **PROBLEMS},
             openapi_extra={"requestBody": UPLOAD_BODY, "parameters": DETECT_QUERY},
             summary="Actions of the persons in a video (two passes, past and future memory)")
async def detect(request: Request, engine: ReadyEngine) -> Response:
    service = service_of(request)
    assert service.upload_dir is not None
    assert service.artifact is not None
    async with deadline(service.settings.request_timeout_s):
        upload = await receive_upload(request, service.limits, service.upload_dir)
        try:
            params = detect_params({**request.query_params, **upload.fields},
                                   service.artifact.labels, service.settings.max_persons)
            answer = await engine.detect(upload.path, params, video_id="video")
        finally:
            upload.path.unlink(missing_ok=True)
    return answer_response(answer)
