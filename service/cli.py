"""`aia serve`: the detection service under uvicorn. Flags override the AIA_* environment."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from types import FrameType

import uvicorn

from exporters.artifact import (
    ArtifactError,
    check_detector_name,
    manifest_detectors,
    read_manifest,
)
from exporters.models_dir import version_path
from service.logs import configure_logging
from service.malloc import fix_mmap_threshold, limit_arenas
from service.settings import Device, RuntimeKind, Settings

log = logging.getLogger("aia.service")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=None, metavar="DIR",
                        help="artifact directory (AIA_MODEL_DIR; default artifacts/aia-synth-tiny)")
    parser.add_argument("--models-dir", type=Path, default=None, metavar="DIR",
                        help="a models directory (AIA_MODELS_DIR; `aia models`): serve the "
                             "version `current` names, switch on POST /v1/admin/reload or "
                             "SIGHUP; replaces --model")
    parser.add_argument("--detector", default=None, metavar="NAME",
                        help="which of the artifact's detectors finds the persons (AIA_DETECTOR;"
                             " default: the artifact's default, e.g. ssdlite-person)")
    parser.add_argument("--host", default=None, help="bind address (AIA_HOST; 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (AIA_PORT; 8000)")
    parser.add_argument("--redis-url", default=None, metavar="URL",
                        help="Redis for session memory (AIA_REDIS_URL; default: in-process)")
    parser.add_argument("--runtime", choices=[k.value for k in RuntimeKind], default=None,
                        help="onnx, torchscript or eager (AIA_RUNTIME; onnx)")
    parser.add_argument("--device", choices=[d.value for d in Device], default=None,
                        help="auto, cpu or cuda (AIA_DEVICE; auto)")
    parser.add_argument("--log-level", default=None, help="AIA_LOG_LEVEL (info)")


def settings_from(args: argparse.Namespace) -> Settings:
    flags = {"model_dir": args.model, "models_dir": args.models_dir,
             "detector": args.detector, "host": args.host,
             "port": args.port, "redis_url": args.redis_url, "runtime": args.runtime,
             "device": args.device, "log_level": args.log_level}
    return Settings(**{k: v for k, v in flags.items() if v is not None})


class DrainingServer(uvicorn.Server):
    """Readiness goes false the moment a stop signal arrives, before uvicorn stops listening
    and waits for in-flight requests."""

    def __init__(self, config: uvicorn.Config, on_exit: object) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if callable(self._on_exit):
            self._on_exit()
        super().handle_exit(sig, frame)
        # a stop signal ends in a clean drain: exit 0, not the signal re-raised (143)
        self._captured_signals.clear()


def run(args: argparse.Namespace) -> int:
    from service.app import create_app

    settings = settings_from(args)
    # before any thread starts: memory that goes back to the system (service/malloc.py)
    limit_arenas()
    fix_mmap_threshold(settings.malloc_mmap_threshold)
    configure_logging(settings.log_level)
    try:  # a wrong artifact or detector name stops here, before the port opens; the files
        # themselves are checked once, when the app loads the artifact
        served = (version_path(settings.models_dir) if settings.models_dir is not None
                  else settings.model_dir)
        manifest = read_manifest(served)
        check_detector_name(served, settings.detector, manifest_detectors(manifest)[0])
    except ArtifactError as err:
        print(f"aia serve: {err}\n(export one with `aia export`, or pass --model DIR)",
              file=sys.stderr)
        return 2
    app = create_app(settings)
    service = app.state.service
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None,
                            access_log=False, lifespan="on",
                            timeout_graceful_shutdown=int(settings.drain_s) or None)
    DrainingServer(config, service.drain).run()
    if service.failed is not None:
        print(f"aia serve: {service.failed}", file=sys.stderr)
        return 1
    return 0
