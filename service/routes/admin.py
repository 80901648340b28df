"""The admin API: switch the served model version without a restart. Its own keys
(AIA_ADMIN_KEY_HASHES); with none configured it is off (403)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request

from service.deps import ServiceDep, service_of
from service.errors import Forbidden, NotFound
from service.middleware import check_api_key
from service.routes.openapi import problems
from service.schemas import ReloadRequest, ReloadResponse


def require_admin_key(request: Request) -> None:
    accepted = service_of(request).settings.admin_key_hashes
    if not accepted:
        raise Forbidden("the admin API is off: set AIA_ADMIN_KEY_HASHES to the sha256 of an "
                        "admin key")
    check_api_key(request, accepted)


router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin_key)],
                   responses=problems(400, 401, 403, 404, 422, 503))


@router.post("/reload", response_model=ReloadResponse,
             summary="Load a version beside the served one, warm it up, switch")
async def reload(service: ServiceDep,
                 body: Annotated[ReloadRequest | None, Body()] = None) -> ReloadResponse:
    model, previous = await service.reload(body.version if body is not None else None)
    return ReloadResponse(version=model.version, previous=previous)


@router.post("/rollback", response_model=ReloadResponse,
             summary="Serve the version served before this one again")
async def rollback(service: ServiceDep) -> ReloadResponse:
    if service.previous is None:
        raise NotFound("no earlier version was served by this process; POST /v1/admin/reload "
                       "with a version instead")
    model, previous = await service.reload(service.previous)
    return ReloadResponse(version=model.version, previous=previous)
