"""Liveness, readiness and the Prometheus scrape: open, no API key."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.deps import service_of
from service.errors import NotReady
from service.schemas import Health
from service.store import StoreUnavailable

router = APIRouter(tags=["health"])
SESSIONS_COUNT_TIMEOUT_S = 0.5


@router.get("/health/live", response_model=Health, summary="The process answers")
async def live() -> Health:
    return Health(status="alive")


@router.get("/health/ready", response_model=Health,
            responses={503: {"description": "loading, failed or draining"}},
            summary="Model loaded and warmed up, not draining")
async def ready(request: Request) -> Health:
    service = service_of(request)
    if service.draining:
        raise NotReady("draining: the service is shutting down")
    if not service.ready:
        raise NotReady("the model is loading and warming up" if service.failed is None
                       else f"the model failed to load: {service.failed}")
    return Health(status="ready")


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    service = service_of(request)
    if service.store is not None:
        with contextlib.suppress(StoreUnavailable, TimeoutError):
            async with asyncio.timeout(SESSIONS_COUNT_TIMEOUT_S):
                service.metrics.active_sessions.set(await service.store.count_sessions())
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)
