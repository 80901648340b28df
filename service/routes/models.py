"""GET /v1/models: the versions loaded (the serving one first), from their manifests."""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Request

from exporters.artifact import Artifact
from exporters.models_dir import list_versions
from service.deps import AuthDep, service_of
from service.errors import NotReady
from service.schemas import DetectorInfo, LabelInfo, ModelInfo, ModelRef, ModelsResponse

router = APIRouter(prefix="/v1", tags=["models"], dependencies=[AuthDep])


def model_info(artifact: Artifact, model: ModelRef, serving: bool) -> ModelInfo:
    labels = [LabelInfo(id=lb.id, name=lb.name, group=lb.group, evaluated=lb.evaluated)
              for lb in artifact.labels]
    detectors = [DetectorInfo(name=d.name, trained_on=d.trained_on, classes=dict(d.classes),
                              person_class_id=d.person_class_id,
                              score_threshold=d.score_threshold)
                 for d in artifact.detectors.values()]
    return ModelInfo(
        name=model.name, version=model.version, runtime=model.runtime, device=model.device,
        trained_on=model.trained_on, label_set=model.label_set,
        real_footage=model.real_footage, detector=model.detector, detectors=detectors,
        dtype=artifact.dtype, labels=labels, input=dict(artifact.manifest["input"]),
        training=dict(artifact.training), parity=dict(artifact.parity), serving=serving)


@router.get("/models", response_model=ModelsResponse, summary="The loaded model versions")
async def list_models(request: Request) -> ModelsResponse:
    service = service_of(request)
    artifact, model = service.artifact, service.model
    if artifact is None or model is None:
        raise NotReady("the service is starting; retry", headers={"Retry-After": "1"})
    models = [model_info(artifact, model, True)]
    models += [model_info(old.artifact, old.model, False) for old in service.retiring]
    models_dir = service.settings.models_dir
    available = (await anyio.to_thread.run_sync(list_versions, models_dir)
                 if models_dir is not None and models_dir.is_dir() else [])
    return ModelsResponse(models=models, previous=service.previous, available=available)
