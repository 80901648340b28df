"""Reference facts from pytorchvideo's own SlowFast models (PyPI `pytorchvideo`, code only),
so that our importer of pytorchvideo checkpoints can be proven equal to it.

Nothing of pytorchvideo is copied here: the script imports its hub builders
`slowfast_r50_detection` and `slowfast_r50`, builds them with `pretrained=False` (no download,
ever), gives every parameter and BatchNorm buffer small random values, and runs them in eval
mode on CPU. pytorchvideo and its pure-Python dependencies are not project dependencies; put
them on PYTHONPATH from a separate target (the project's torch/torchvision stay as they are):

    .venv/bin/pip install --no-deps --target /tmp/ptv pytorchvideo fvcore iopath \
        parameterized networkx yacs tabulate termcolor portalocker
    PYTHONPATH=/tmp/ptv .venv/bin/python -m bench.pytorchvideo_reference --out /tmp/ptv_ref

(`pytorchvideo.transforms` does not import on torchvision >= 0.17: it needs the removed
`torchvision.transforms.functional_tensor`. pytorchvideo.models, .layers and .data do, and the
transforms are not used here.)

Writes, for each builder B in (slowfast_r50_detection, slowfast_r50):

- OUT/keys-B.json: the model's full state dict (key -> shape, in state-dict order), the
  pytorchvideo version and the published checkpoint layout;
- OUT/B/checkpoint.pyth: the random weights in the layout the hub loads
  (`torch.load(...)["model_state"]`, keys exactly as model.state_dict(), no prefix). The
  script proves the layout by running the hub's own `pretrained=True` path with its download
  function replaced by a local `torch.load` of this file, and comparing every tensor;
- OUT/B/io.pt: the fixed input and the outputs of one eval-mode forward. io.pt holds only
  tensors, str, int, float, lists and dicts, so it loads with
  `torch.load(..., weights_only=True)`. Tensors (float32, batch 1):
  `fast` [1,3,32,H,W] (random, as if normalised), `slow` [1,3,8,H,W] = fast frames
  `slow_index` (linspace(0, 31, 8).long(), the tutorials' PackPathway), `stem_lateral_slow`/
  `_fast` (blocks.0 output: stem, then the first lateral concatenated: 80 / 8 channels),
  `res5_slow` [1,2048,8,h,w] / `res5_fast` [1,256,32,h,w] (blocks.4 output, the last stage);
  detection (H x W = 128 x 160): `bboxes` [K,5] (batch index, x1,y1,x2,y2 in input pixels),
  `features` [1,2304,1,H/16,W/16] (backbone output: time-averaged pathways concatenated),
  `roi_features` [K,2304,7,7] (RoIAlign output), `head_input` [K,2304] (after the spatial
  max-pool: the input of the projection), `logits` [K,80] (pre-sigmoid), `scores` [K,80]
  (the model's return value, post-sigmoid); classification (224 x 256): `pooled`
  [1,2304,1,1,2] (AvgPool3d (8,7,7)/(32,7,7) stride 1, concatenated: the head's input),
  `logits` [1,400] (the model's return value; no activation).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

BUILDERS = ("slowfast_r50_detection", "slowfast_r50")
CHECKPOINT_NAME = "checkpoint.pyth"
STATE_KEY = "model_state"

LAYOUT = {
    "checkpoint_top_level": (
        "dict; the hub (pytorchvideo/models/hub/slowfast.py `_slowfast`) does "
        "load_state_dict_from_url(url, map_location='cpu')['model_state'] and then a strict "
        "model.load_state_dict. Other top-level entries of a published file are never read."
    ),
    "state_key": STATE_KEY,
    "key_prefix_in_checkpoint": "",
    "keys_listed": "model.state_dict() keys, in state-dict order (identical to the checkpoint's)",
    "bn_keys": "BatchNorm3d: weight, bias, running_mean, running_var, num_batches_tracked",
}

# Hub defaults an importer needs, read from pytorchvideo/models/slowfast.py and head.py (the
# asserts in `_check_architecture` verify the ones visible on the built modules).
FACTS = {
    "slowfast_r50_detection": {
        "alpha": 4,
        "beta_inv": 8,
        "frames_slow_fast": [8, 32],
        "lateral": "Conv3d(C_fast, 2*C_fast, (7,1,1), stride (4,1,1), pad (3,0,0), no bias)"
        " + BN + ReLU, concatenated after the slow features; after stem, res2, res3, res4",
        "stem_slow": "Conv3d(3,64,(1,7,7),s(1,2,2),p(0,3,3)) BN ReLU MaxPool3d((1,3,3),"
        "s(1,2,2),p(0,1,1))",
        "stem_fast": "Conv3d(3,8,(5,7,7),s(1,2,2),p(2,3,3)) BN ReLU MaxPool3d((1,3,3),"
        "s(1,2,2),p(0,1,1))",
        "res_spatial_strides": [1, 2, 2, 1],
        "res_conv_b_dilation": [1, 1, 1, 2],
        "conv_a_temporal_kernel_slow": [1, 1, 3, 3],
        "conv_a_temporal_kernel_fast": [3, 3, 3, 3],
        "bn": "BatchNorm3d eps 1e-5 momentum 0.1 (eval: running statistics)",
        "backbone_tail": "AvgPool3d((8,1,1)) slow, AvgPool3d((32,1,1)) fast, stride 1, concat"
        " -> [B, 2304, 1, H/16, W/16]; a clip whose pathways are not exactly 8/32 frames"
        " leaves T != 1 and the head raises",
        "head": "squeeze T; torchvision RoIAlign((7,7), spatial_scale 1/16, sampling_ratio 0,"
        " aligned=False) on boxes [K,5] (batch index, x1,y1,x2,y2 in input pixels);"
        " MaxPool2d(7, stride 1); Dropout(0.5); Linear(2304, 80); Sigmoid; view [K, 80]",
        "output": "post-sigmoid scores [K, 80]",
    },
    "slowfast_r50": {
        "alpha": 4,
        "beta_inv": 8,
        "frames_slow_fast": [8, 32],
        "res_spatial_strides": [1, 2, 2, 2],
        "res_conv_b_dilation": [1, 1, 1, 1],
        "backbone_tail": "AvgPool3d((8,7,7)) slow, AvgPool3d((32,7,7)) fast, stride 1, no"
        " padding, concat -> [B, 2304, 1, H/32 - 6, W/32 - 6] at 8/32 frames",
        "head": "Dropout(0.5); Linear(2304, 400) per position; no activation;"
        " AdaptiveAvgPool3d(1) -> [B, 400] (a mean over the 7x7 windows when the map is"
        " larger than 7x7, not a global average of the map)",
        "output": "logits [B, 400] (no softmax)",
    },
}

DETECTION_BOXES = [  # input pixels (x1, y1, x2, y2) on a 160x128 (W x H) clip
    [10.5, 12.25, 70.0, 120.5],
    [60.0, 20.0, 110.75, 126.0],
    [99.5, 5.0, 159.0, 100.0],
    [40.0, 40.0, 48.0, 47.0],  # smaller than one feature cell: RoI clamped to 1x1 cells
]


# --------------------------------------------------------------------------- building


def _hub() -> Any:
    import pytorchvideo.models.hub.slowfast as hub_slowfast

    return hub_slowfast


def _version() -> str:
    import pytorchvideo

    return str(getattr(pytorchvideo, "__version__", "unknown"))


def _build(name: str, seed: int) -> nn.Module:
    builder: Callable[..., nn.Module] = getattr(_hub(), name)
    torch.manual_seed(seed)
    return builder(pretrained=False).eval()


def _count_by_prefix(model: nn.Module, depth: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for key, p in model.named_parameters():
        parts = key.split(".")
        prefix = ".".join(parts[: min(depth, len(parts) - 1)]) + "."
        counts[prefix] = counts.get(prefix, 0) + p.numel()
    return counts


def _write_keys(model: nn.Module, name: str, out: Path) -> dict[str, Any]:
    state = model.state_dict()
    depth = 3 if name.endswith("_detection") else 2
    record = {
        "builder": name,
        "pytorchvideo_version": _version(),
        "checkpoint_url": _hub().checkpoint_paths[name],
        "layout": LAYOUT,
        "facts": FACTS[name],
        "num_entries": len(state),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "num_parameters_by_prefix": _count_by_prefix(model, depth),
        "keys": {k: list(v.shape) for k, v in state.items()},
    }
    (out / f"keys-{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def _check_architecture(model: nn.Module, name: str) -> None:
    """Assert the hub defaults listed in FACTS that are visible on the built modules."""
    net = model.model if name.endswith("_detection") else model
    stages = net.blocks
    fast_lateral = stages[0].multipathway_fusion.conv_fast_to_slow
    assert fast_lateral.kernel_size == (7, 1, 1)
    assert fast_lateral.stride == (4, 1, 1)
    assert fast_lateral.padding == (3, 0, 0)
    assert isinstance(stages[4].multipathway_fusion, nn.Identity)
    for stem in stages[0].multipathway_blocks:
        assert stem.pool.padding == [0, 1, 1]
        assert stem.pool.kernel_size == (1, 3, 3)
    facts = FACTS[name]
    for i, (stride, dilation) in enumerate(
        zip(facts["res_spatial_strides"], facts["res_conv_b_dilation"], strict=True)
    ):
        for pathway in stages[i + 1].multipathway_blocks:
            conv_b = pathway.res_blocks[0].branch2.conv_b
            assert conv_b.stride == (1, stride, stride), (name, i, conv_b)
            assert conv_b.dilation == (1, dilation, dilation), (name, i, conv_b)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm3d):
            assert module.eps == 1e-5
            assert module.momentum == 0.1
    if name.endswith("_detection"):
        head = model.detection_head
        roi = head.roi_layer
        assert tuple(roi.output_size) == (7, 7)
        assert roi.spatial_scale == 1.0 / 16.0
        assert roi.sampling_ratio == 0
        assert roi.aligned is False
        assert isinstance(head.activation, nn.Sigmoid)
        assert head.pool is None
        assert head.proj.in_features == 2304
        assert head.proj.out_features == 80


def _randomize(model: nn.Module, seed: int) -> None:
    """Small random values everywhere (BN statistics and biases included), scaled to keep
    activations O(1) through 16 residual blocks."""
    gen = torch.Generator().manual_seed(seed)

    def normal(t: torch.Tensor, std: float) -> None:
        t.copy_(torch.randn(t.shape, generator=gen) * std)

    def uniform(t: torch.Tensor, low: float, high: float) -> None:
        t.copy_(torch.rand(t.shape, generator=gen) * (high - low) + low)

    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, nn.Conv3d | nn.Linear):
                fan_in = module.weight[0].numel()
                gain = 1.0 if isinstance(module, nn.Linear) else math.sqrt(2.0)
                normal(module.weight, gain / math.sqrt(fan_in))
                if module.bias is not None:
                    normal(module.bias, 0.1)
            elif isinstance(module, nn.BatchNorm3d):
                # the residual branch's last BN smaller, so 16 blocks stay O(1)
                low, high = (0.1, 0.4) if name.endswith("norm_c") else (0.5, 1.0)
                uniform(module.weight, low, high)
                normal(module.bias, 0.05)
                normal(module.running_mean, 0.05)
                uniform(module.running_var, 0.5, 1.5)
                module.num_batches_tracked.fill_(1000)


# --------------------------------------------------------------------------- checkpoint


def _save_checkpoint(model: nn.Module, path: Path) -> None:
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    torch.save({STATE_KEY: state}, path)


def _check_checkpoint(name: str, model: nn.Module, path: Path, seed: int) -> None:
    """Load the file through the hub's own pretrained=True path, download replaced by a
    local torch.load (same map_location), into a differently seeded fresh model."""
    hub = _hub()
    url = hub.checkpoint_paths[name]
    original = hub.load_state_dict_from_url

    def local_load(
        checkpoint_path: str, progress: bool = True, map_location: str | None = None
    ) -> Any:
        assert checkpoint_path == url, checkpoint_path
        del progress
        return torch.load(path, map_location=map_location, weights_only=True)

    hub.load_state_dict_from_url = local_load
    try:
        torch.manual_seed(seed + 7)
        fresh = getattr(hub, name)(pretrained=True).eval()
    finally:
        hub.load_state_dict_from_url = original
    ours, theirs = model.state_dict(), fresh.state_dict()
    assert list(ours) == list(theirs)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours), "checkpoint does not round-trip"


# --------------------------------------------------------------------------- forward


def _clip(seed: int, height: int, width: int) -> dict[str, torch.Tensor]:
    """A normalised clip of 32 fast frames; slow = the frames the pytorchvideo tutorials'
    PackPathway picks: index_select(fast, T, linspace(0, 31, 32 // 4).long())."""
    gen = torch.Generator().manual_seed(seed + 1)
    fast = torch.randn((1, 3, 32, height, width), generator=gen)
    index = torch.linspace(0, fast.shape[2] - 1, fast.shape[2] // 4).long()
    slow = torch.index_select(fast, 2, index)
    return {"slow": slow, "fast": fast, "slow_index": index}


class _Hooks:
    """Forward hooks that copy a module's input/output at the moment it is produced (the
    pathway lists are mutated in place further on)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self._handles: list[Any] = []

    @staticmethod
    def _copy(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value.detach().clone()
        return [v.detach().clone() for v in value]

    def output(self, module: nn.Module, key: str) -> None:
        def hook(_m: nn.Module, _args: Any, out: Any) -> None:
            self.values[key] = self._copy(out)

        self._handles.append(module.register_forward_hook(hook))

    def input(self, module: nn.Module, key: str) -> None:
        def hook(_m: nn.Module, args: Any) -> None:
            self.values[key] = self._copy(args[0])

        self._handles.append(module.register_forward_pre_hook(hook))

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def _forward_detection(model: nn.Module, seed: int, height: int, width: int) -> dict[str, Any]:
    clip = _clip(seed, height, width)
    bboxes = torch.tensor([[0.0, *box] for box in DETECTION_BOXES])
    hooks = _Hooks()
    stages = model.model.blocks
    hooks.output(stages[0], "stem_outputs")
    hooks.output(stages[4], "res5_outputs")
    hooks.output(model.model, "features")
    hooks.output(model.detection_head.roi_layer, "roi_features")
    hooks.input(model.detection_head.proj, "head_input")
    hooks.input(model.detection_head.activation, "logits")
    try:
        with torch.no_grad():
            # the model writes into the pathway list it is given: pass a fresh one
            scores = model([clip["slow"].clone(), clip["fast"].clone()], bboxes.clone())
    finally:
        hooks.remove()
    v = hooks.values
    k = bboxes.shape[0]
    return {
        **clip,
        "bboxes": bboxes,
        "stem_lateral_slow": v["stem_outputs"][0],
        "stem_lateral_fast": v["stem_outputs"][1],
        "res5_slow": v["res5_outputs"][0],
        "res5_fast": v["res5_outputs"][1],
        "features": v["features"],
        "roi_features": v["roi_features"],
        "head_input": v["head_input"].reshape(k, -1),
        "logits": v["logits"].reshape(k, -1),
        "scores": scores,
        "output_is": "post-sigmoid scores [K, 80] (model(...) return value)",
    }


def _forward_classification(model: nn.Module, seed: int, height: int, width: int) -> dict[str, Any]:
    clip = _clip(seed, height, width)
    hooks = _Hooks()
    hooks.output(model.blocks[0], "stem_outputs")
    hooks.output(model.blocks[4], "res5_outputs")
    hooks.output(model.blocks[5], "pooled")
    try:
        with torch.no_grad():
            logits = model([clip["slow"].clone(), clip["fast"].clone()])
    finally:
        hooks.remove()
    v = hooks.values
    return {
        **clip,
        "stem_lateral_slow": v["stem_outputs"][0],
        "stem_lateral_fast": v["stem_outputs"][1],
        "res5_slow": v["res5_outputs"][0],
        "res5_fast": v["res5_outputs"][1],
        "pooled": v["pooled"],
        "logits": logits,
        "output_is": "logits [1, 400] (no activation; model(...) return value)",
    }


def _describe(io: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v.shape) for k, v in io.items() if isinstance(v, torch.Tensor)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--builders", nargs="+", default=list(BUILDERS), choices=BUILDERS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--det-size", type=int, nargs=2, default=[128, 160], metavar=("H", "W"))
    parser.add_argument(
        "--cls-size",
        type=int,
        nargs=2,
        default=[224, 256],
        metavar=("H", "W"),
        help="at least 193 each (the head's 7x7 average pool needs a 7x7 map at stride 32)",
    )
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    print(f"pytorchvideo {_version()}, torch {torch.__version__}")
    for name in args.builders:
        start = time.perf_counter()
        model = _build(name, args.seed)
        _check_architecture(model, name)
        record = _write_keys(model, name, args.out)
        _randomize(model, args.seed)
        folder = args.out / name
        folder.mkdir(exist_ok=True)
        ckpt = folder / CHECKPOINT_NAME
        _save_checkpoint(model, ckpt)
        _check_checkpoint(name, model, ckpt, args.seed)
        if name.endswith("_detection"):
            io = _forward_detection(model, args.seed, *args.det_size)
            summary = f"scores[0,:3] {[round(x, 4) for x in io['scores'][0, :3].tolist()]}"
        else:
            io = _forward_classification(model, args.seed, *args.cls_size)
            summary = f"logits[0,:3] {[round(x, 4) for x in io['logits'][0, :3].tolist()]}"
        io.update(
            builder=name,
            pytorchvideo_version=_version(),
            seed=args.seed,
            checkpoint=CHECKPOINT_NAME,
            facts=FACTS[name],
            shapes=_describe(io),
        )
        torch.save(io, folder / "io.pt")
        stds = {k: round(v.std().item(), 3) for k, v in io.items() if k.startswith("res5_")}
        print(
            f"{name}: {record['num_entries']} keys, {record['num_parameters']:,} params; "
            f"res5 std {stds}; logits std {io['logits'].std().item():.3f}; {summary} "
            f"({time.perf_counter() - start:.1f} s)"
        )


if __name__ == "__main__":
    main()
