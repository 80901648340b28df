"""GET /v1/models: what is served, from the artifact's manifest."""

from __future__ import annotations

from fastapi import APIRouter, Request

from service.deps import AuthDep, service_of
from service.errors import NotReady
from service.schemas import DetectorInfo, LabelInfo, ModelInfo, ModelsResponse

router = APIRouter(prefix="/v1", tags=["models"], dependencies=[AuthDep])


@router.get("/models", response_model=ModelsResponse, summary="The served model")
async def list_models(request: Request) -> ModelsResponse:
    service = service_of(request)
    artifact, model = service.artifact, service.model
    if artifact is None or model is None:
        raise NotReady("the service is starting; retry", headers={"Retry-After": "1"})
    labels = [LabelInfo(id=lb.id, name=lb.name, group=lb.group, evaluated=lb.evaluated)
              for lb in artifact.labels]
    detectors = [DetectorInfo(name=d.name, trained_on=d.trained_on, classes=dict(d.classes),
                              person_class_id=d.person_class_id,
                              score_threshold=d.score_threshold)
                 for d in artifact.detectors.values()]
    return ModelsResponse(models=[ModelInfo(
        name=model.name, version=model.version, runtime=model.runtime, device=model.device,
        trained_on=model.trained_on, label_set=model.label_set,
        real_footage=model.real_footage, detector=model.detector, detectors=detectors,
        dtype=artifact.dtype, labels=labels, input=dict(artifact.manifest["input"]),
        training=dict(artifact.training), parity=dict(artifact.parity))])
