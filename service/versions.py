"""Model versions inside one running service: load one beside the others, warm it up as
start-up does, serve it, retire the one it replaced once its last request ends.

Each version has its own runtime, batcher, engine and memory store; its store keys carry the
version (`memory_key`), so memory written by one version is never read by another. A
session started under an older version, sent a clip after a switch, is taken over: it is
created again under the serving version (same id, TTL and lookahead), answered with no
memory of the old one (`cold`), and the answer says `session.model_changed_from`. Two
replicas that switch at different moments each read and write only their own version's
keys, so no session's memory ever mixes versions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import anyio.to_thread

from exporters.artifact import Artifact
from exporters.models_dir import artifact_name, artifact_version, list_versions
from service.batcher import Batcher
from service.detection import Detector
from service.engine import Engine, SessionsElsewhere
from service.metrics import Metrics
from service.runtime import Runtime, load_runtime, warm_up
from service.schemas import ModelRef
from service.settings import RuntimeKind, Settings
from service.stages import EngineOptions, ServedModel
from service.store import LocalStore, MemoryStore, RedisStore, SessionRecord, StoreUnavailable

log = logging.getLogger("aia.service")
RETIRE_POLL_S = 0.05


@dataclass
class LoadedVersion:
    """One model version, loaded, warmed up and ready to answer."""

    artifact: Artifact
    model: ModelRef
    runtime: Runtime
    batcher: Batcher
    engine: Engine

    @property
    def version(self) -> str:
        return self.model.version


def model_version(artifact: Artifact) -> str:
    """The artifact's name and the start of its manifest's sha256: a new export, new keys
    (exporters.models_dir owns the rule)."""
    return artifact_version(artifact.root)


def load_detector(artifact: Artifact, device: str, name: str | None = None,
                  min_score: float | None = None) -> Detector | None:
    """The artifact's detector called `name` (None: its default) that finds persons and
    objects when a request has no boxes, keeping scores >= min_score (None: the graph's
    threshold); None when the artifact has none."""
    spec = artifact.choose_detector(name)
    if spec is None:
        return None
    from exporters.detector_runtime import DetectorRunner

    providers = (("CUDAExecutionProvider", "CPUExecutionProvider") if device.startswith("cuda")
                 else ("CPUExecutionProvider",))
    floor = spec.score_threshold if min_score is None else max(min_score, spec.score_threshold)
    return DetectorRunner(spec, providers, min_score=floor)


def model_ref(artifact: Artifact, runtime: str, device: str,
              detector: str | None = None) -> ModelRef:
    """The `model` block of every answer: what is served and what it was trained on."""
    chosen = artifact.choose_detector(detector)
    data = artifact.dataset
    return ModelRef(name=artifact_name(artifact.root), version=model_version(artifact),
                    runtime=runtime,
                    device=device, trained_on=data.name, label_set=data.label_set,
                    real_footage=data.real_footage,
                    detector=chosen.name if chosen is not None else None)


def build_engine(settings: Settings, served: ServedModel, store: MemoryStore, metrics: Metrics,
                 sessions_elsewhere: SessionsElsewhere | None = None) -> Engine:
    """The engine as the settings configure it: one place for the service and `aia detect`."""
    return Engine(served, store, metrics, EngineOptions.from_settings(settings),
                  sessions_elsewhere)


def artifact_formats(settings: Settings) -> tuple[str, ...]:
    """The graph files the chosen runtime reads (eager rebuilds from the TorchScript ones)."""
    return ("onnx",) if settings.runtime is RuntimeKind.onnx else ("torchscript",)


class Versions:
    """The memory stores of every version this process has served (the old ones stay open
    so their sessions can be found and taken over), and the lookup across them."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings, self.metrics = settings, metrics
        self.stores: dict[str, MemoryStore] = {}

    def store(self, version: str) -> MemoryStore:
        if version not in self.stores:
            s = self.settings
            self.stores[version] = (
                RedisStore(s.redis_url, version, s.session_max_seconds, s.redis_timeout_s,
                           observer=self.metrics.on_redis) if s.redis_url
                else LocalStore(version, s.session_ttl_s, s.session_max_seconds,
                                s.local_max_sessions))
        return self.stores[version]

    def known(self) -> list[str]:
        """Every version a session could have been started under: those served here, and
        (with Redis, where other replicas write) those published in the models directory."""
        versions = list(self.stores)
        models_dir = self.settings.models_dir
        if self.settings.redis_url and models_dir is not None and models_dir.is_dir():
            versions += [v for v in list_versions(models_dir) if v not in versions]
        return versions

    async def session_elsewhere(self, session: str, serving: str
                                ) -> tuple[str, SessionRecord] | None:
        """The newest other version holding `session`, with its record."""
        for version in reversed(self.known()):
            if version == serving:
                continue
            try:
                record = await self.store(version).get_session(session)
            except StoreUnavailable:
                continue
            if record is not None:
                return version, record
        return None

    async def close(self) -> None:
        for store in self.stores.values():
            await store.close()


async def load_version(artifact: Artifact, settings: Settings, metrics: Metrics,
                       versions: Versions) -> LoadedVersion:
    """Load and warm up a checked artifact's graphs off the event loop (raises what went
    wrong; nothing is served from it until it is returned)."""
    s = settings
    started = time.perf_counter()
    version = model_version(artifact)
    runtime = await anyio.to_thread.run_sync(load_runtime, artifact, s.runtime, s.device)
    await anyio.to_thread.run_sync(warm_up, runtime, artifact.input)
    detector = await anyio.to_thread.run_sync(load_detector, artifact, runtime.device,
                                              s.detector, s.detector_min_score)
    model = model_ref(artifact, runtime.name, runtime.device, s.detector)
    batcher = Batcher(runtime, s.max_batch, s.max_wait_ms, s.queue_size, observer=metrics)
    engine = build_engine(s, ServedModel(artifact, model, batcher, detector),
                          versions.store(version), metrics, versions.session_elsewhere)
    log.info("version loaded", extra={"model": version, "device": runtime.device,
                                      "warm_up_s": round(time.perf_counter() - started, 3)})
    return LoadedVersion(artifact, model, runtime, batcher, engine)


async def retire(old: LoadedVersion, metrics: Metrics) -> None:
    """Free a replaced version once the requests that started on it have ended."""
    while old.engine.load.active > 0:
        await asyncio.sleep(RETIRE_POLL_S)
    await old.batcher.close()
    metrics.model_info.labels(old.version, old.runtime.name, old.runtime.device).set(0)
    log.info("version retired", extra={"model": old.version})
