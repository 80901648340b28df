"""POST /v1/detect: a clip or a whole video, answered offline (past and future memory)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service.deps import AuthDep, ReadyEngine, ServiceDep, answer_upload
from service.engine import Answer
from service.params import detect_params
from service.routes.openapi import DETECT_QUERY, PROBLEMS, UPLOAD_BODY
from service.schemas import DetectResponse

router = APIRouter(prefix="/v1", tags=["detect"], dependencies=[AuthDep])


@router.post("/detect", response_model=DetectResponse,
             responses={200: {"content": {"text/csv": {}}}, **PROBLEMS},
             openapi_extra={"requestBody": UPLOAD_BODY, "parameters": DETECT_QUERY},
             summary="Actions of the persons in a video (two passes, past and future memory)")
async def detect(request: Request, service: ServiceDep, engine: ReadyEngine) -> Response:
    async def answer(video: Path, values: Mapping[str, str]) -> Answer:
        params = detect_params(values, engine.served.artifact.labels,
                               engine.options.bounds)
        return await engine.detect(video, params, video_id="video")

    return await answer_upload(request, service, answer)
