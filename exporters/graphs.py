"""The two exported graphs (docs/architecture.md, "two graphs"), their I/O contract, and
the ONNX / TorchScript writers.

Both graphs take and return float32 (the clip is uint8) whatever the artifact's dtype: an fp16
artifact casts at its edges, so the service feeds every artifact the same arrays and keeps
memory features in one dtype.
"""

from __future__ import annotations

import contextlib
import enum
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from exporters.artifact import MIN_SIDE
from model.config import ModelConfig
from model.head import AIAHead
from model.network import AIA, FeatureGraph


class ExportError(RuntimeError):
    """An exporter or a parity check failed; the message says which graph and why."""


class Format(enum.StrEnum):
    ONNX = "onnx"
    TORCHSCRIPT = "torchscript"


class Dtype(enum.StrEnum):
    FP32 = "fp32"
    FP16 = "fp16"

    @property
    def torch(self) -> torch.dtype:
        return torch.float16 if self is Dtype.FP16 else torch.float32


SUFFIX = {Format.ONNX: ".onnx", Format.TORCHSCRIPT: ".pt"}


@dataclass(frozen=True)
class Axis:
    """A dynamic axis: its name and inclusive bounds (None: unbounded)."""

    name: str
    low: int
    high: int | None = None


@dataclass(frozen=True)
class Port:
    """One input or output: dims are ints (fixed) or Axis (dynamic)."""

    name: str
    dtype: str  # numpy name
    dims: tuple[int | Axis, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype,
                "shape": [d if isinstance(d, int) else d.name for d in self.dims]}


@dataclass(frozen=True)
class GraphSpec:
    name: str
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]

    def axes(self) -> dict[str, Axis]:
        found = {}
        for port in (*self.inputs, *self.outputs):
            found.update({d.name: d for d in port.dims if isinstance(d, Axis)})
        return found

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": [p.to_dict() for p in self.inputs],
                "outputs": [p.to_dict() for p in self.outputs],
                "axes": {a.name: [a.low, a.high] for a in self.axes().values()}}


def feature_spec(cfg: ModelConfig) -> GraphSpec:
    top = cfg.input.max_long_side
    b, k = Axis("B", 1), Axis("K", 0)
    h, w = Axis("H", MIN_SIDE, top), Axis("W", MIN_SIDE, top)
    return GraphSpec(
        "features",
        (Port("clip", "uint8", (b, cfg.input.frames, h, w, 3)), Port("boxes", "float32", (k, 5))),
        (Port("roi_features", "float32", (k, cfg.feature_dim)),),
    )


def head_spec(cfg: ModelConfig) -> GraphSpec:
    d = cfg.feature_dim
    n, b, o, m = Axis("N", 0), Axis("B", 1), Axis("O", 0), Axis("M", 0)
    return GraphSpec(
        "head",
        (Port("person_feats", "float32", (n, d)), Port("person_batch", "int64", (n,)),
         Port("object_feats", "float32", (b, o, d)), Port("object_mask", "bool", (b, o)),
         Port("memory", "float32", (b, m, d)), Port("memory_mask", "bool", (b, m)),
         Port("memory_seconds", "int64", (b, m))),
        (Port("logits", "float32", (n, cfg.classifier.num_classes)),),
    )


class FeaturesExport(nn.Module):
    """Graph 1 with float32 boxes in and float32 features out at any compute dtype."""

    def __init__(self, graph: FeatureGraph, dtype: torch.dtype) -> None:
        super().__init__()
        self.net = graph.to(dtype)  # not `graph`: FX reserves that name
        self.dtype = dtype

    def forward(self, clip: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        return self.net(clip, boxes.to(self.dtype)).float()


class HeadExport(nn.Module):
    """Graph 2 with float32 features in and float32 logits out at any compute dtype."""

    def __init__(self, head: AIAHead, dtype: torch.dtype) -> None:
        super().__init__()
        self.net = head.to(dtype)
        self.dtype = dtype

    def forward(self, person_feats: torch.Tensor, person_batch: torch.Tensor,
                object_feats: torch.Tensor, object_mask: torch.Tensor, memory: torch.Tensor,
                memory_mask: torch.Tensor, memory_seconds: torch.Tensor) -> torch.Tensor:
        return self.net(person_feats.to(self.dtype), person_batch,
                         object_feats.to(self.dtype), object_mask, memory.to(self.dtype),
                         memory_mask, memory_seconds).float()


def export_modules(model: AIA, dtype: Dtype) -> dict[str, nn.Module]:
    """Fresh copies of the two graphs (the caller's model stays fp32), in eval mode."""
    copy = AIA(model.cfg)
    copy.load_state_dict(model.state_dict())
    copy.eval()
    return {"features": FeaturesExport(copy.features, dtype.torch).eval(),
            "head": HeadExport(copy.head, dtype.torch).eval()}


def example_inputs(spec: GraphSpec, cfg: ModelConfig) -> tuple[torch.Tensor, ...]:
    """Inputs to trace with. No dynamic axis is 0 or 1 (torch.export would specialise it) and
    the parity inputs use other sizes, so a shape frozen into a graph shows up there."""
    gen = torch.Generator().manual_seed(0)
    if spec.name == "features":
        top = cfg.input.max_long_side
        h, w = min(top, 40), min(top, 56)
        clip = torch.randint(0, 256, (2, cfg.input.frames, h, w, 3), dtype=torch.uint8,
                             generator=gen)
        boxes = torch.tensor([[0, 2, 3, 30, 38], [1, 10, 4, 50, 36], [0, 20, 1, 40, 20],
                              [1, 0, 0, 12, 18], [0, 5, 9, 25, 39.0]])
        return clip, boxes
    d = cfg.feature_dim
    seconds = torch.tensor([[-2, -1, 1, 2]] * 2)
    return (torch.randn(3, d, generator=gen), torch.tensor([0, 0, 1]),
            torch.randn(2, 2, d, generator=gen), torch.ones(2, 2, dtype=torch.bool),
            torch.randn(2, 4, d, generator=gen), torch.ones(2, 4, dtype=torch.bool), seconds)


@contextlib.contextmanager
def quiet(what: str) -> Iterator[None]:
    """Keeps exporter chatter and torch.jit deprecation warnings out of the user's terminal;
    if the export fails, its captured output goes into the error."""
    log = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(log), \
                contextlib.redirect_stderr(log):
            warnings.simplefilter("ignore")
            yield
    except Exception as err:
        tail = log.getvalue()[-2000:]
        raise ExportError(f"{what}: {type(err).__name__}: {err}\n{tail}") from err


def _torch_dims(spec: GraphSpec) -> dict[str, dict[int, Any]]:
    dims: dict[str, Axis] = spec.axes()
    made = {a.name: torch.export.Dim(a.name, min=a.low, max=a.high) for a in dims.values()}
    return {p.name: {i: made[d.name] for i, d in enumerate(p.dims) if isinstance(d, Axis)}
            for p in spec.inputs}


def export_onnx(module: nn.Module, spec: GraphSpec, example: tuple[torch.Tensor, ...],
                path: Path) -> None:
    """The dynamo exporter, one self-contained file (weights inside, no .data sidecar)."""
    with quiet(f"{path.name}: ONNX export of graph {spec.name!r}"), torch.no_grad():
        torch.onnx.export(module, example, str(path), dynamo=True, external_data=False,
                          input_names=[p.name for p in spec.inputs],
                          output_names=[p.name for p in spec.outputs],
                          dynamic_shapes=_torch_dims(spec))


def export_torchscript(module: nn.Module, spec: GraphSpec, example: tuple[torch.Tensor, ...],
                       path: Path) -> None:
    """Traced, not scripted: the graphs hold config objects TorchScript cannot compile, and
    every shape they use is read from tensors, so the trace stays dynamic (parity checks it
    on other shapes)."""
    with quiet(f"{path.name}: TorchScript trace of graph {spec.name!r}"), torch.no_grad():
        traced = torch.jit.trace(module, example, check_trace=False)
        follow_input_device(traced)
        traced.save(str(path))


def follow_input_device(traced: torch.jit.ScriptModule) -> int:
    """A trace records `torch.arange(n, device=x.device)` with the device it ran on; rewrite
    each such constant into `<first tensor input>.device`, so the artifact traced on CPU runs
    on a GPU too. Returns the number of constants rewritten."""
    rewritten = 0
    for sub in traced.modules():
        if not sub._c._has_method("forward"):
            continue
        graph = sub.graph
        tensors = [v for v in graph.inputs() if v.type().isSubtypeOf(torch._C.TensorType.get())]
        for node in graph.findAllNodes("prim::Constant"):
            if node.output().type().kind() != "DeviceObjType":
                continue
            if not tensors:
                raise ExportError(f"{sub.original_name}: a device constant and no tensor input")
            device = graph.create("prim::device", [tensors[0]])
            device.output().setType(torch._C.DeviceObjType.get())
            device.insertBefore(node)
            node.output().replaceAllUsesWith(device.output())
            node.destroy()
            rewritten += 1
    return rewritten
