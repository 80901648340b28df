"""Reference facts from AlphAction itself (github MVIG-SJTU/AlphAction, the AIA paper's code),
so that our importer of its published checkpoints can be proven equal to it.

Nothing of AlphAction is copied here: the script puts a checkout (`--alphaction`) on sys.path,
builds AlphAction's own model with its own `build_detection_model` from its own
`config_files/*.yaml`, and runs it on CPU. Its compiled/CUDA-only pieces are replaced before
import by the stand-ins below. yacs (AlphAction's config library, not a project dependency)
is taken from `--extra-path` (e.g. made with `pip install --target /tmp/alphaction_deps yacs`).

    .venv/bin/python -m bench.alphaction_reference --alphaction /tmp/alphaction \
        --extra-path /tmp/alphaction_deps --out /tmp/alphaction_ref [--configs ...]

Writes, for every config, OUT/keys-<config>.json: the model's full state dict (key -> shape, in
state-dict order) with the commit of the checkout and the checkpoint layout. For the R50 4x16
configs (--forward-configs) it also writes OUT/<config>/checkpoint.pth (random, non-trivial
weights, in the published layout: {"model": state dict with "module." prefixes}) and
OUT/<config>/io.pt: every input and the outputs of one eval-mode forward on a fixed input
(see `_forward` for the contents). io.pt holds only tensors, str, int, float, lists and dicts,
so it loads with `torch.load(..., weights_only=True)`.

Stand-ins (the only deviations from running AlphAction on a GPU; each is exact up to float
summation order):

1. `alphaction._custom_cuda_ext.roi_align_3d_forward` (ROIAlign3d, CUDA only) ->
   `torchvision.ops.roi_align(x.reshape(B, C*T, H, W), rois, (ph, pw), spatial_scale,
   sampling_ratio, aligned=False)` reshaped back to [K, C, T, ph, pw]. The CUDA kernel
   (csrc/cuda/ROIAlign3d_cuda.cu) computes every (roi, channel, frame) plane independently
   with one 2D RoIAlign, so folding T into channels is exact. Its 2D math is torchvision's
   `aligned=False` path line for line (both are Detectron's RoIAlign): box coordinates times
   spatial_scale with no rounding and no -0.5 offset, roi width/height clamped to >= 1,
   bin = roi / pooled size, sampling grid ceil(roi_h / ph) x ceil(roi_w / pw) when
   sampling_ratio <= 0 (the configs use 0), sample points at (i + 0.5) / grid inside a bin,
   bilinear interpolation returning 0 for points outside [-1, H] x [-1, W] and clamping to
   [0, H-1] x [0, W-1] otherwise, average over the grid count. rois are [K, 5]
   (batch index, x1, y1, x2, y2) in both. The configs set MEAN_BEFORE_POOLER, so T == 1 here.
2. `roi_pool_3d_forward` (ROIPool3d, CUDA only; unused by the six configs, which use align3d)
   -> `torch.ops.torchvision.roi_pool` on the same fold: round() of the scaled corners, +1 in
   roi size, floor/ceil bin edges clipped to the map, empty bins 0; its argmax (h * W + w
   inside the plane) is the kernel's argmax index.
3. `sigmoid_focalloss_forward` / `softmax_focalloss_forward` (CUDA only, training loss) ->
   the kernels' closed forms in torch: sigmoid: -t (1-p)^g log(max(p, FLT_MIN)) z_p
   - (1-t) p^g log(1-p) z_n with log(1-p) = -softplus(x) (the kernel's stable form) and
   z_p = alpha, z_n = 1 - alpha when alpha >= 0, else 1; softmax: P = softmax(x) and
   -(1 - P_y)^g log(max(P_y, FLT_MIN)) z for labels >= 0. Never called in eval mode; the
   backward entry points raise (inference only).
4. Hard-coded "cuda" placements in the test-time memory path (roi_action_feature_extractor:
   `torch.zeros(..., device="cuda")` for a second missing from the pool, and
   `BoxList.to("cuda")` in `sample_mem_feature`) -> CPU: that module's `torch` name is a
   proxy whose `zeros` maps a CUDA device to CPU, and `BoxList.to` maps CUDA devices to CPU.
   Pure placement; no arithmetic changes.
5. IA convs are built as `nn.Conv3d(dim_in, dim_out, 1, bias)`: the 4th positional argument is
   `stride`, so they get stride (True, True, True) (and always a bias). The torch of its time
   read that as stride 1; current torch's conv3d rejects bool strides. After building, every
   Conv3d stride is converted to ints: (1, 1, 1), the same convolution.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import torch
import torchvision.ops
from torch import nn

CONFIGS = (
    "resnet50_4x16f_baseline",
    "resnet50_4x16f_parallel",
    "resnet50_4x16f_serial",
    "resnet50_4x16f_denseserial",
    "resnet101_8x8f_baseline",
    "resnet101_8x8f_denseserial",
)
FORWARD_CONFIGS = (
    "resnet50_4x16f_denseserial",
    "resnet50_4x16f_serial",
    "resnet50_4x16f_parallel",
    "resnet50_4x16f_baseline",
)
FLT_MIN = 1.1754943508222875e-38

LAYOUT = {
    "checkpoint_top_level": (
        "dict; 'model' -> state dict. Written by Checkpointer.save as {'model', 'optimizer', "
        "'scheduler', 'iteration'} (+ 'person_pool', a MemoryPool object, in intermediate "
        "model_XXXXXXX.pth; popped before model_final.pth). ActionCheckpointer._load_file "
        "wraps a file without 'model' as {'model': file}, so a raw state dict also loads."
    ),
    "key_prefix_in_checkpoint": "module.",
    "key_prefix_note": (
        "train_net.py wraps the model in DistributedDataParallel when distributed (the "
        "published multi-GPU runs), so saved keys are 'module.' + the keys listed here. "
        "model_serialization.load_state_dict strips 'module.' only when every key has it, "
        "then maps each model key to the longest loaded key that is a suffix of it "
        "(strict load afterwards)."
    ),
    "keys_listed": "model.state_dict() keys without the 'module.' prefix, in state-dict order",
    "frozen_bn_keys": "weight, bias, running_mean, running_var (buffers; no num_batches_tracked)",
    "ia_layer_norm": "created lazily in forward, elementwise_affine=False: no state-dict keys",
}


# --------------------------------------------------------------------------- stand-ins


def _fold(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
    b, c, t, h, w = x.shape
    return x.contiguous().view(b, c * t, h, w), (c, t, h * w)


def _roi_align_3d_forward(
    x: torch.Tensor,
    rois: torch.Tensor,
    spatial_scale: float,
    pooled_h: int,
    pooled_w: int,
    sampling_ratio: int,
) -> torch.Tensor:
    folded, (c, t, _) = _fold(x)
    out = torchvision.ops.roi_align(
        folded,
        rois.to(x.dtype),
        (pooled_h, pooled_w),
        spatial_scale=spatial_scale,
        sampling_ratio=sampling_ratio,
        aligned=False,
    )
    return out.view(rois.shape[0], c, t, pooled_h, pooled_w)


def _roi_pool_3d_forward(
    x: torch.Tensor, rois: torch.Tensor, spatial_scale: float, pooled_h: int, pooled_w: int
) -> tuple[torch.Tensor, torch.Tensor]:
    folded, (c, t, _) = _fold(x)
    out, argmax = torch.ops.torchvision.roi_pool(
        folded, rois.to(x.dtype), spatial_scale, pooled_h, pooled_w
    )
    shape = (rois.shape[0], c, t, pooled_h, pooled_w)
    return out.view(shape), argmax.view(shape).int()


def _sigmoid_focalloss_forward(
    logits: torch.Tensor, targets: torch.Tensor, gamma: float, alpha: float
) -> torch.Tensor:
    p = torch.sigmoid(logits)
    z_p, z_n = (alpha, 1.0 - alpha) if alpha >= 0 else (1.0, 1.0)
    term1 = (1.0 - p).pow(gamma) * torch.log(p.clamp(min=FLT_MIN))
    term2 = p.pow(gamma) * -nn.functional.softplus(logits)
    return -targets * term1 * z_p - (1.0 - targets) * term2 * z_n


def _softmax_focalloss_forward(
    logits: torch.Tensor, targets: torch.Tensor, gamma: float, alpha: float
) -> tuple[torch.Tensor, torch.Tensor]:
    prob = torch.softmax(logits, dim=1)
    labels = targets.long()
    valid = labels >= 0
    p_y = prob.gather(1, labels.clamp(min=0)[:, None])[:, 0]
    if alpha >= 0:
        z = torch.where(labels == 0, 1.0 - alpha, torch.where(labels >= 1, alpha, 0.0))
    else:
        z = torch.ones_like(p_y)
    loss = -((1.0 - p_y).pow(gamma) * torch.log(p_y.clamp(min=FLT_MIN))) * z
    return torch.where(valid, loss, torch.zeros_like(loss)), prob


def _no_backward(*_args: Any) -> torch.Tensor:
    raise NotImplementedError("inference-only stand-in: no backward pass")


def _cpu_device(device: Any) -> Any:
    if device is not None and torch.device(device).type == "cuda":
        return torch.device("cpu")
    return device


def _zeros_on_cpu(*size: Any, **kwargs: Any) -> torch.Tensor:
    if "device" in kwargs:
        kwargs["device"] = _cpu_device(kwargs["device"])
    return torch.zeros(*size, **kwargs)


def _install_stand_ins(checkout: Path, extra_paths: list[Path]) -> None:
    """Put the checkout first on sys.path, replace its compiled extension, patch devices."""
    sys.path.insert(0, str(checkout))
    sys.path.extend(str(p) for p in extra_paths)  # after the venv: its pyyaml wins
    import alphaction  # the package only; nothing under it imports the extension yet

    ext = types.ModuleType("alphaction._custom_cuda_ext")
    ext.__dict__.update(
        roi_align_3d_forward=_roi_align_3d_forward,
        roi_align_3d_backward=_no_backward,
        roi_pool_3d_forward=_roi_pool_3d_forward,
        roi_pool_3d_backward=_no_backward,
        sigmoid_focalloss_forward=_sigmoid_focalloss_forward,
        sigmoid_focalloss_backward=_no_backward,
        softmax_focalloss_forward=_softmax_focalloss_forward,
        softmax_focalloss_backward=_no_backward,
    )
    sys.modules[ext.__name__] = ext
    alphaction._custom_cuda_ext = ext  # type: ignore[attr-defined]

    from alphaction.modeling.roi_heads.action_head import roi_action_feature_extractor as rfe
    from alphaction.structures.bounding_box import BoxList

    proxy = types.ModuleType("torch_on_cpu")
    proxy.__dict__["__getattr__"] = functools.partial(getattr, torch)
    proxy.__dict__["zeros"] = _zeros_on_cpu
    rfe.torch = proxy  # type: ignore[attr-defined]

    original_to = BoxList.to

    def boxlist_to(self: Any, device: Any) -> Any:
        return original_to(self, _cpu_device(device))

    BoxList.to = boxlist_to


# --------------------------------------------------------------------------- model


def _commit(checkout: Path) -> str:
    out = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def _load_cfg(checkout: Path, name: str) -> Any:
    from alphaction.config import cfg as default_cfg

    cfg = default_cfg.clone()
    cfg.merge_from_file(str(checkout / "config_files" / f"{name}.yaml"))
    cfg.freeze()
    return cfg


def _build(cfg: Any, seed: int) -> nn.Module:
    from alphaction.modeling.detector import build_detection_model

    torch.manual_seed(seed)
    model = build_detection_model(cfg).eval()
    for module in model.modules():  # stand-in 5: bool strides (True == 1) for current torch
        if isinstance(module, nn.Conv3d):
            module.stride = tuple(int(s) for s in module.stride)
    return model


def _write_keys(model: nn.Module, name: str, commit: str, out: Path) -> dict[str, Any]:
    state = model.state_dict()
    keys = {k: list(v.shape) for k, v in state.items()}
    params = sum(p.numel() for p in model.parameters())
    record = {
        "config": name,
        "alphaction_commit": commit,
        "layout": LAYOUT,
        "num_entries": len(keys),
        "num_parameters": params,
        "num_parameters_by_prefix": _count_by_prefix(model),
        "keys": keys,
    }
    (out / f"keys-{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def _count_by_prefix(model: nn.Module) -> dict[str, int]:
    prefixes = (
        "backbone.slow.",
        "backbone.fast.",
        "roi_heads.action.feature_extractor.ia_structure.",
        "roi_heads.action.feature_extractor.fc",
        "roi_heads.action.predictor.",
    )
    counts = dict.fromkeys(prefixes, 0)
    for key, p in model.named_parameters():
        for prefix in prefixes:
            if key.startswith(prefix):
                counts[prefix] += p.numel()
    return counts


def _randomize(model: nn.Module, seed: int) -> None:
    """Small random values everywhere (biases, BN statistics, IA output projections, temporal
    positions, dense mixing logits included), scaled to keep activations O(1)."""
    from alphaction.layers import FrozenBatchNorm3d

    torch.manual_seed(seed)
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, nn.Conv3d | nn.Linear):
                fan_in = module.weight[0].numel()
                gain = math.sqrt(2.0) if name.startswith("backbone.") else 1.0
                module.weight.normal_(0.0, gain / math.sqrt(fan_in))
                if module.bias is not None:
                    module.bias.normal_(0.0, 0.05)
            elif isinstance(module, FrozenBatchNorm3d):
                # the residual branch's last BN smaller, so 16-33 blocks stay O(1)
                low, high = (0.1, 0.4) if name.endswith("btnk.conv3.bn") else (0.5, 1.0)
                module.weight.uniform_(low, high)
                module.bias.normal_(0.0, 0.05)
                module.running_mean.normal_(0.0, 0.05)
                module.running_var.uniform_(0.5, 1.5)
        for name, param in model.named_parameters():
            if "temporal_position" in name:
                param.normal_(0.0, 0.5)
            elif ".dense_params." in name:
                param.normal_(0.0, 1.0)


# --------------------------------------------------------------------------- forward

PERSON_BOXES = [[10.5, 12.25, 70.0, 120.5], [60.0, 20.0, 110.75, 126.0], [99.5, 5.0, 150.0, 100.0]]
OBJECT_BOXES = [[30.0, 60.5, 55.25, 90.0], [120.0, 70.0, 158.5, 110.0]]
OBJECT_SCORES = [0.6, 0.9]
MEMORY_PERSONS = {-30: 2, -7: 5, -2: 1, -1: 3, 1: 4, 3: 2, 30: 1}  # second offset -> persons
MOVIE_ID = "reference_movie"
TIMESTAMP = 1000


def _boxlist(boxes: torch.Tensor, size_wh: tuple[int, int], **fields: torch.Tensor) -> Any:
    from alphaction.structures.bounding_box import BoxList

    boxlist = BoxList(boxes.clone(), size_wh, mode="xyxy")
    for key, value in fields.items():
        boxlist.add_field(key, value)
    return boxlist


class _Recorder:
    """Forward hooks that keep what AlphAction's modules computed."""

    def __init__(self, model: nn.Module) -> None:
        from alphaction.modeling.roi_heads.action_head.IA_structure import InteractionBlock

        self.data: dict[str, Any] = {"pooler_rois": [], "ia_blocks": {}}
        head = model.roi_heads.action
        extractor = head.feature_extractor
        self.handles = [
            model.backbone.register_forward_hook(self._backbone),
            extractor.pooler.register_forward_hook(self._pooler),
            extractor.register_forward_hook(self._extractor),
            head.predictor.register_forward_hook(self._predictor),
        ]
        if hasattr(extractor, "ia_structure"):
            ia = extractor.ia_structure
            self.handles.append(ia.register_forward_hook(self._ia))
            for name, block in ia.named_children():
                if isinstance(block, InteractionBlock):
                    self.handles.append(block.register_forward_hook(self._block(name)))

    def _backbone(self, _m: nn.Module, _args: Any, out: Any) -> None:
        self.data["backbone_slow"], self.data["backbone_fast"] = (o.clone() for o in out)

    def _pooler(self, _m: nn.Module, args: Any, _out: Any) -> None:
        self.data["pooler_rois"].append(torch.cat([b.bbox for b in args[1]]).clone())

    def _extractor(self, _m: nn.Module, _args: Any, out: Any) -> None:
        if out[0] is not None:  # the call that ran the head (not stage 1)
            self.data["head_features"] = out[0].clone()
            self.data["person_pooled"] = out[1].flatten(1).clone()
            if out[2] is not None:
                self.data["object_pooled"] = out[2].flatten(1).clone()

    def _predictor(self, _m: nn.Module, _args: Any, out: torch.Tensor) -> None:
        self.data["logits"] = out.clone()

    def _ia(self, _m: nn.Module, args: Any, out: torch.Tensor) -> None:
        person, _boxes, objects, _obj_boxes, memory = args
        self.data["ia_in_person"] = person.flatten(1).clone()
        self.data["ia_in_objects"] = None if objects is None else objects.flatten(1).clone()
        self.data["ia_in_memory"] = memory.flatten(2).clone()
        self.data["ia_output"] = out.flatten(1).clone()

    def _block(self, name: str) -> Any:
        def hook(_m: nn.Module, _args: Any, out: torch.Tensor) -> None:
            self.data["ia_blocks"][name] = out.flatten(1).clone()

        return hook

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def _forward(model: nn.Module, cfg: Any, seed: int, height: int, width: int) -> dict[str, Any]:
    from alphaction.structures.memory_pool import MemoryPool
    from alphaction.utils.IA_helper import has_memory, has_object

    ia_cfg = cfg.MODEL.IA_STRUCTURE
    frames = cfg.INPUT.FRAME_NUM * cfg.INPUT.FRAME_SAMPLE_RATE
    tau, alpha = cfg.INPUT.TAU, cfg.INPUT.ALPHA
    gen = torch.Generator().manual_seed(seed + 1)
    clip = torch.randn(1, 3, frames, height, width, generator=gen)
    # SlowFastCrop at test time (no slow jitter): slow from (tau-1)//2 every tau frames,
    # fast from (tau//alpha-1)//2 every tau//alpha frames.
    slow = clip[:, :, (tau - 1) // 2 :: tau].contiguous()
    fast_stride = tau // alpha
    fast = clip[:, :, (fast_stride - 1) // 2 :: fast_stride].contiguous()
    size_wh = (width, height)
    person_boxes = torch.tensor(PERSON_BOXES)
    object_boxes = torch.tensor(OBJECT_BOXES)
    object_scores = torch.tensor(OBJECT_SCORES)
    persons = _boxlist(person_boxes, size_wh)
    objects = _boxlist(object_boxes, size_wh, scores=object_scores)

    recorder = _Recorder(model)
    io: dict[str, Any] = {}
    with torch.no_grad():
        if has_memory(ia_cfg):
            # compute_on_dataset_2stage: stage 1 pools features (part_forward=0) and fills the
            # pool; stage 2 runs the head on pooled features (part_forward=1).
            stage1 = model(slow, fast, [persons], [objects], part_forward=0)
            person_feat, object_feat = stage1[0][0], stage1[1][0]
            scale = person_feat.get_field("pooled_feature").mean().item()
            pool = MemoryPool()
            pool[MOVIE_ID, TIMESTAMP] = person_feat
            mem_seconds, mem_features, mem_boxes = [], [], []
            for offset, count in sorted(MEMORY_PERSONS.items()):
                feat = torch.rand(count, ia_cfg.DIM_IN, generator=gen) * 2.0 * scale
                xy = torch.rand(count, 2, generator=gen) * torch.tensor([width / 2, height / 2])
                boxes = torch.cat([xy, xy + torch.tensor([width / 3, height / 2])], dim=1)
                pool[MOVIE_ID, TIMESTAMP + offset] = _boxlist(
                    boxes, size_wh, pooled_feature=feat.view(count, -1, 1, 1, 1)
                )
                mem_seconds.append(offset)
                mem_features.append(feat)
                mem_boxes.append(boxes)
            extras = {
                "person_pool": pool,
                "movie_ids": [MOVIE_ID],
                "timestamps": [TIMESTAMP],
                "current_feat_p": [person_feat],
                "current_feat_o": [object_feat],
            }
            result = model(None, None, None, None, extras=extras, part_forward=1)[0]
            io["memory"] = {
                "seconds": mem_seconds,
                "features": mem_features,
                "boxes": mem_boxes,
                "layout": (
                    "pool entries (the clip's timestamp + seconds[i]) -> features[i] "
                    "[k_i, 2304] (AlphAction stores [k_i, 2304, 1, 1, 1]) with boxes[i] "
                    "[k_i, 4]; every other second in [t-30, t+30] is absent from the pool. "
                    "The head reads t-30..t-1, then the clip's own persons (its current pooled "
                    "features), then t+1..t+30; each second padded with zero rows to "
                    "MAX_PER_SEC=5 (a random 5 when more; not the case here); no mask. "
                    "ia_in_memory is the resulting [clips, 61*5, 2304] tensor, second-major."
                ),
            }
        else:
            result = model(slow, fast, [persons], [objects])[0]
    recorder.close()
    data = recorder.data
    rois = data["pooler_rois"]
    io.update(
        {
            "slow": slow,
            "fast": fast,
            "image_size_wh": list(size_wh),
            "slow_frame_indices": list(range(frames))[(tau - 1) // 2 :: tau],
            "fast_frame_indices": list(range(frames))[(fast_stride - 1) // 2 :: fast_stride],
            "person_boxes": person_boxes,
            "object_boxes": object_boxes if has_object(ia_cfg) else None,
            "object_scores": object_scores if has_object(ia_cfg) else None,
            "movie_id": MOVIE_ID,
            "timestamp": TIMESTAMP,
            "person_rois": rois[0],
            "object_rois": rois[2] if has_object(ia_cfg) else None,
            "backbone_slow": data["backbone_slow"],
            "backbone_fast": data["backbone_fast"],
            "person_features": data["person_pooled"],
            "object_features": data.get("object_pooled", None),
            "ia_in_memory": data.get("ia_in_memory", None),
            "ia_block_outputs": data["ia_blocks"],
            "ia_output": data.get("ia_output", None),
            "head_features": data["head_features"],
            "logits": data["logits"],
            "scores": result.get_field("scores"),
        }
    )
    if data.get("ia_in_person") is not None:  # what the IA structure got is what was pooled
        assert torch.equal(data["ia_in_person"], data["person_pooled"])
    return io


NOTES = {
    "slow": "[1, 3, T_slow, H, W] normalised clip as the backbone gets it (SlowFastCrop output)",
    "fast": "[1, 3, 32, H, W]; slow/fast are strided views of one random 64-frame clip",
    "person_boxes": "[n, 4] xyxy pixels of the (resized) frame, as given to the model (test "
    "time: detector boxes, not enlarged)",
    "person_rois": "[n, 4] the boxes RoIAlign pooled: BoxList.extend(TEST.EXTEND_SCALE=(0.1, "
    "0.05)) of person_boxes: pad 0.1*(x2-x1+1)/2 and 0.05*(y2-y1+1)/2 on each side, then "
    "clamp to [0, W-1] x [0, H-1]",
    "object_rois": "[m, 4] objects are pooled on their boxes as given (no enlargement)",
    "person_features": "[n, 2304] pre-IA person features: time-mean, RoIAlign 7x7, spatial "
    "max; slow 2048 channels then fast 256",
    "object_features": "[m, 2304] object features, same pooling",
    "ia_in_memory": "[1, 305, 2304] memory as the IA structure got it (see memory.layout)",
    "slow_frame_indices": "which of the 64 clip frames (key frame at 32) the slow path gets",
    "ia_block_outputs": "name -> [n, dim] output of each InteractionBlock (1024, last 2304)",
    "ia_output": "[n, 2304] IA structure output; added to person_features (FUSION add)",
    "head_features": "[n, 1024] relu(fc2(relu(fc1(person_features + ia_output))))",
    "logits": "[n, 80] pre-activation cls_score output (eval: predictor dropout is a no-op)",
    "scores": "[n, 80] post-processed: softmax over logits[:, :14] (pose), sigmoid for 14..79",
}


# --------------------------------------------------------------------------- main


def _check_checkpoint(cfg: Any, model: nn.Module, path: Path, seed: int) -> None:
    """Load the written checkpoint with AlphAction's own loader into a fresh model."""
    from alphaction.utils.model_serialization import load_state_dict

    fresh = _build(cfg, seed + 7)
    load_state_dict(fresh, torch.load(path, weights_only=True)["model"], False)
    ours, theirs = model.state_dict(), fresh.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours), "checkpoint does not round-trip"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alphaction", type=Path, required=True, help="AlphAction checkout")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    parser.add_argument(
        "--forward-configs", nargs="*", default=list(FORWARD_CONFIGS), choices=CONFIGS
    )
    parser.add_argument("--extra-path", type=Path, action="append", default=[])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=160)
    args = parser.parse_args()

    torch.set_num_threads(max(1, torch.get_num_threads()))
    checkout = args.alphaction.resolve()
    _install_stand_ins(checkout, [p.resolve() for p in args.extra_path])
    commit = _commit(checkout)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"AlphAction {commit} from {checkout}")

    for name in dict.fromkeys([*args.configs, *args.forward_configs]):
        start = time.perf_counter()
        cfg = _load_cfg(checkout, name)
        model = _build(cfg, args.seed)
        record = _write_keys(model, name, commit, args.out)
        line = f"{name}: {record['num_entries']} keys, {record['num_parameters']:,} params"
        if name in args.forward_configs:
            _randomize(model, args.seed)
            folder = args.out / name
            folder.mkdir(exist_ok=True)
            ckpt = folder / "checkpoint.pth"
            torch.save({"model": {f"module.{k}": v for k, v in model.state_dict().items()}}, ckpt)
            _check_checkpoint(cfg, model, ckpt, args.seed)
            io = _forward(model, cfg, args.seed, args.height, args.width)
            io.update(config=name, alphaction_commit=commit, seed=args.seed, notes=NOTES)
            torch.save(io, folder / "io.pt")
            ia = io["ia_output"]
            ratio = 0.0 if ia is None else (ia.norm() / io["person_features"].norm()).item()
            line += (
                f"; forward: logits std {io['logits'].std().item():.3f}, "
                f"|ia|/|person| {ratio:.3f}, scores[0,:3] "
                f"{[round(v, 4) for v in io['scores'][0, :3].tolist()]}"
            )
        print(f"{line} ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
