"""The two model graphs of an artifact behind one interface (docs/architecture.md, "two graphs").

Three interchangeable implementations, all fed the same numpy arrays and returning float32:
`onnx` (ONNX Runtime, the default), `torchscript` (the traced twins) and `eager` (the model
classes rebuilt from the manifest's config with the TorchScript file's weights: for debugging
and profiling with plain PyTorch). Input names and dtypes come from the manifest's graph
ports, so callers may pass any numeric dtype and this module casts once at the edge.

Nothing here runs at import; torch is imported only by the torch-backed runtimes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from exporters.artifact import Artifact, ArtifactError, InputSpec, load_torchscript
from service.settings import Device, RuntimeKind

log = logging.getLogger(__name__)

CUDA_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")
CPU_PROVIDERS = ("CPUExecutionProvider",)


class Runtime(Protocol):
    name: str  # "onnx" | "torchscript" | "eager"
    device: str  # "cpu" | "cuda"

    def features(self, clip: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """clip uint8 [B,T,H,W,3]; boxes [K,5] (clip index, x1, y1, x2, y2) -> float32 [K,D]."""
        ...

    def head(self, *inputs: np.ndarray) -> np.ndarray:
        """Graph 2's seven inputs in head_spec order -> logits float32 [N,A]."""
        ...


class Ports:
    """Names and dtypes of one graph's inputs, read from the manifest."""

    def __init__(self, graph: str, entries: Sequence[Mapping[str, Any]]) -> None:
        self.graph = graph
        self.names = tuple(str(e["name"]) for e in entries)
        self.dtypes = tuple(np.dtype(e["dtype"]) for e in entries)

    def cast(self, inputs: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
        if len(inputs) != len(self.names):
            raise TypeError(f"graph {self.graph!r} takes {len(self.names)} inputs "
                            f"{list(self.names)}, got {len(inputs)}")
        return tuple(np.ascontiguousarray(x, dtype=d)
                     for x, d in zip(inputs, self.dtypes, strict=True))


def graph_ports(artifact: Artifact) -> dict[str, Ports]:
    graphs = artifact.manifest["graphs"]
    try:
        return {g: Ports(g, graphs[g]["inputs"]) for g in ("features", "head")}
    except (KeyError, TypeError) as err:
        raise ArtifactError(f"{artifact.root / 'manifest.json'}: graphs.*.inputs: {err}") from None


class OnnxRuntime:
    name = "onnx"

    def __init__(self, features: Any, head: Any, ports: Mapping[str, Ports],
                 device: str) -> None:
        self._features, self._head, self._ports = features, head, ports
        self.device = device

    def features(self, clip: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        ports = self._ports["features"]
        feeds = dict(zip(ports.names, ports.cast((clip, boxes)), strict=True))
        return self._features.run(None, feeds)[0]

    def head(self, *inputs: np.ndarray) -> np.ndarray:
        ports = self._ports["head"]
        return self._head.run(None, dict(zip(ports.names, ports.cast(inputs), strict=True)))[0]


class TorchRuntime:
    """TorchScript or eager modules: the same calling convention, on `device`."""

    def __init__(self, name: str, features: Any, head: Any, ports: Mapping[str, Ports],
                 device: str) -> None:
        self.name, self._features, self._head, self._ports = name, features, head, ports
        self.device = device

    def _run(self, module: Any, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            tensors = [torch.from_numpy(x).to(self.device) for x in inputs]
            return module(*tensors).float().cpu().numpy()

    def features(self, clip: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        return self._run(self._features, self._ports["features"].cast((clip, boxes)))

    def head(self, *inputs: np.ndarray) -> np.ndarray:
        return self._run(self._head, self._ports["head"].cast(inputs))


def session_options() -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = os.cpu_count() or 1
    # one worker thread calls the graphs; parallelism lives inside each operator
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # the CUDA provider's fallback warning is reported below
    return options


def onnx_sessions(artifact: Artifact, device: Device) -> tuple[Any, Any, str]:
    """(features session, head session, device used): CUDA only if it really initialises."""
    import onnxruntime as ort

    paths = [artifact.path(g, "onnx") for g in ("features", "head")]
    if device is not Device.cpu and "CUDAExecutionProvider" in ort.get_available_providers():
        # a failing CUDA provider logs errors through ORT's global logger; the fallback is
        # reported once below instead (2 is ORT's default severity, restored after)
        ort.set_default_logger_severity(4)
        try:
            sessions = [ort.InferenceSession(str(p), session_options(), providers=list(
                CUDA_PROVIDERS)) for p in paths]
        finally:
            ort.set_default_logger_severity(2)
        # ORT silently drops a provider whose libraries (CUDA, cuDNN) fail to load
        if all(s.get_providers()[0] == "CUDAExecutionProvider" for s in sessions):
            return sessions[0], sessions[1], "cuda"
        log.log(logging.WARNING if device is Device.cuda else logging.INFO,
                "ONNX Runtime's CUDA provider does not initialise here (missing CUDA/cuDNN "
                "libraries or no GPU); running on CPU")
    sessions = [ort.InferenceSession(str(p), session_options(), providers=list(CPU_PROVIDERS))
                for p in paths]
    return sessions[0], sessions[1], "cpu"


def torch_device(device: Device) -> str:
    import torch

    if device is not Device.cpu and torch.cuda.is_available():
        return "cuda"
    if device is Device.cuda:
        log.warning("device cuda asked for, but torch sees no GPU; running on CPU")
    return "cpu"


def eager_modules(artifact: Artifact, device: str) -> tuple[Any, Any]:
    """The model classes with the artifact's weights (exporters.weights_of), graph 1's
    frozen norms folded into its convolutions: serving only, never trained."""
    from exporters.weights_of import export_wrappers
    from model.backbone import fold_frozen_norms

    features, head = export_wrappers(artifact, device)
    fold_frozen_norms(features)
    return features, head


def load_runtime(artifact: Artifact, kind: RuntimeKind, device: Device) -> Runtime:
    """The artifact's graphs in runtime `kind` on `device` (auto: CUDA when it works)."""
    kind, device = RuntimeKind(kind), Device(device)
    ports = graph_ports(artifact)
    if kind is RuntimeKind.onnx:
        features, head, used = onnx_sessions(artifact, device)
        return OnnxRuntime(features, head, ports, used)
    used = torch_device(device)
    if kind is RuntimeKind.torchscript:
        modules = [load_torchscript(artifact.path(g, "torchscript"), used)
                   for g in ("features", "head")]
        return TorchRuntime(kind.value, modules[0], modules[1], ports, used)
    features, head = eager_modules(artifact, used)
    return TorchRuntime(kind.value, features, head, ports, used)


def warm_up_inputs(spec: InputSpec, frame_size: tuple[int, int] | None = None,
                   persons: int = 3) -> tuple[tuple[np.ndarray, np.ndarray],
                                              tuple[np.ndarray, ...]]:
    """The shapes most requests use: one clip at the resized size of a `frame_size` (w, h)
    frame (default 3:2, the synthetic data's aspect), `persons` persons, every object slot,
    every memory slot filled."""
    width, height = frame_size or (round(spec.short_side * 1.5), spec.short_side)
    w, h, _ = spec.resized(width, height)
    w, h = max(w, spec.min_side), max(h, spec.min_side)
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, (1, spec.frames, h, w, 3), dtype=np.uint8)  # [1,T,h,w,3]
    k = persons + spec.max_objects
    corners = np.sort(rng.uniform(0, 1, (k, 2, 2)), axis=1) * np.array([w, h])  # [k,2,2]
    boxes = np.concatenate([np.zeros((k, 1)), corners.reshape(k, 4)], axis=1)  # [k,5]
    seconds = spec.window.slot_seconds()[None]  # [1,M]
    m, d = seconds.shape[1], spec.feature_dim
    head = (rng.standard_normal((persons, d)).astype(np.float32),
            np.zeros(persons, np.int64),
            rng.standard_normal((1, spec.max_objects, d)).astype(np.float32),
            np.ones((1, spec.max_objects), bool),
            rng.standard_normal((1, m, d)).astype(np.float32), np.ones((1, m), bool),
            seconds.astype(np.int64))
    return (clip, boxes.astype(np.float32)), head


def warm_up(runtime: Runtime, spec: InputSpec, frame_size: tuple[int, int] | None = None,
            rounds: int = 2) -> None:
    """Runs both graphs at the usual shapes, twice: ORT plans memory and TorchScript's
    profiling executor specialises on the first calls of a shape, not on a request's time."""
    features, head = warm_up_inputs(spec, frame_size)
    for _ in range(rounds):
        runtime.features(*features)
        runtime.head(*head)
