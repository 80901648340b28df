"""pytorchvideo's hub detector `slowfast_r50_detection` (AVA v2.2, 80 classes) -> this
project's network.

The hub saves `{"model_state": state_dict}` with no prefix (the hub loader reads only that
entry, then loads strictly); a raw state dict loads too. Its tree, and where each tensor
goes here:

- `model.blocks.0.multipathway_blocks.{0 slow,1 fast}.{conv,norm}` ->
  `features.backbone.{slow,fast}_stem.{0,1}`
- `model.blocks.{i}.multipathway_blocks.{p}.res_blocks.{j}.branch2.{conv,norm}_{a,b,c}` ->
  `{p}_stages.{i-1}.{j}.{a,b,c}.{0,1}`; `branch1_{conv,norm}` -> `...shortcut.{0,1}`
- `model.blocks.{i}.multipathway_fusion.{conv_fast_to_slow,norm}` (i = 0..3) ->
  `laterals.{i}.{conv,norm}` (a conv without bias, then BN + ReLU: `lateral_norm=True`)
- `detection_head.proj` -> `head.classifier.logits` (no MLP, no IA)

BatchNorm's `num_batches_tracked` counts training steps; eval never reads it, so it is the
one entry left unplaced on purpose. What the tensors cannot say is set in the config from
the hub's code (bench/pytorchvideo_reference.py records it): 64 frames, fast every 2nd,
alpha 4, slow frames picked by linspace over the fast ones, pool1 padded, lateral kernel 7,
RGB mean 114.75 / std 57.375 (0.45 / 0.225 of 255), dropout 0.5 and a sigmoid on all 80
classes (AVA's pose group included).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor

from exporters.graphs import ExportError
from model.config import AVA_GROUPS, ClassifierConfig, LossKind, ModelConfig, preset
from model.weight_mapping import place

MAPPING_VERSION = 1
STATE_KEY = "model_state"
_BN = ("weight", "bias", "running_mean", "running_var")
_IGNORED = "num_batches_tracked"  # a training counter; eval mode never reads it
_PATHWAYS = ("slow", "fast")
_MEAN, _STD = 114.75, 57.375  # the hub's 0.45 / 0.225 on [0,1] frames, in pixels


def unwrap(loaded: object, where: Path) -> dict[str, Tensor]:
    """The hub reads `loaded["model_state"]`; a bare state dict is accepted as well."""
    state = loaded.get(STATE_KEY, loaded) if isinstance(loaded, dict) else loaded
    if not isinstance(state, dict) or not state or not all(
            isinstance(v, Tensor) for v in state.values()):
        raise ExportError(f"{where}: not a pytorchvideo checkpoint (a dict with "
                          f"'{STATE_KEY}', or a state dict of tensors)")
    return dict(state)


def _res4_blocks(state: Mapping[str, Tensor]) -> int:
    prefix = r"model\.blocks\.3\.multipathway_blocks\.0\.res_blocks\.(\d+)\."
    return len({int(m.group(1)) for k in state if (m := re.match(prefix, k))})


def infer_config(state: Mapping[str, Tensor]) -> ModelConfig:
    """r50_4x16 switched to the hub detector's sampling, stems, laterals and head."""
    blocks = _res4_blocks(state)
    if blocks != 6:
        raise ExportError(f"res4 has {blocks} blocks: slowfast_r50_detection has 6 (R50)")
    if "detection_head.proj.weight" not in state:
        raise ExportError("no detection_head.proj.weight: not the hub's detection model "
                          "(slowfast_r50 classifies whole clips)")
    cfg = preset("r50_4x16")
    # the hub applies a sigmoid to every class: AVA's pose group too, so no softmax group
    groups = tuple(replace(g, loss=LossKind.SIGMOID, weight=float(g.size)) for g in AVA_GROUPS)
    classifier = ClassifierConfig(hidden=(), dropout=0.5, num_classes=80, groups=groups)
    return replace(
        cfg, name="slowfast_r50_detection",
        input=replace(cfg.input, frames=64, fast_stride=2, alpha=4, mean=(_MEAN,) * 3,
                      std=(_STD,) * 3, slow_sampling="linspace"),
        backbone=replace(cfg.backbone, lateral_kernel=7, pool1_padding=True),
        ia=replace(cfg.ia, blocks=()), classifier=classifier)


def _conv_bn(ours: str, conv: str, norm: str) -> dict[str, str]:
    pairs = {f"{ours}.0.weight": f"{conv}.weight"}
    pairs.update({f"{ours}.1.{p}": f"{norm}.{p}" for p in _BN})
    return pairs


def kinetics_backbone_config() -> ModelConfig:
    """The backbone of the hub's Kinetics classifier `slowfast_r50`: the detector's, with res5
    strided (2) instead of dilated. Its weights initialise AVA training."""
    cfg = infer_config_from_names()
    return replace(cfg, backbone=replace(cfg.backbone, res5_stride=2, res5_dilation=1))


def infer_config_from_names() -> ModelConfig:
    """The detector's config without looking at a state dict (the names fix everything)."""
    state = {"detection_head.proj.weight": torch.zeros(0)}
    state.update({f"model.blocks.3.multipathway_blocks.0.res_blocks.{j}.x": torch.zeros(0)
                  for j in range(6)})
    return infer_config(state)


def backbone_names(cfg: ModelConfig, prefix: str = "model.") -> dict[str, str]:
    """Our backbone keys -> pytorchvideo's (`prefix`: "model." in the detector, "" in the
    Kinetics classifier)."""
    out: dict[str, str] = {}
    for p, path in enumerate(_PATHWAYS):
        ours = f"features.backbone.{path}"
        stem = f"{prefix}blocks.0.multipathway_blocks.{p}"
        out.update(_conv_bn(f"{ours}_stem", f"{stem}.conv", f"{stem}.norm"))
        for i, blocks in enumerate(cfg.backbone.stage_blocks):
            for j in range(blocks):
                mine = f"{ours}_stages.{i}.{j}"
                src = f"{prefix}blocks.{i + 1}.multipathway_blocks.{p}.res_blocks.{j}"
                for part in ("a", "b", "c"):
                    out.update(_conv_bn(f"{mine}.{part}", f"{src}.branch2.conv_{part}",
                                        f"{src}.branch2.norm_{part}"))
                out.update(_conv_bn(f"{mine}.shortcut", f"{src}.branch1_conv",
                                    f"{src}.branch1_norm"))
    for i in range(4):
        fusion = f"{prefix}blocks.{i}.multipathway_fusion"
        ours = f"features.backbone.laterals.{i}"
        out[f"{ours}.conv.weight"] = f"{fusion}.conv_fast_to_slow.weight"
        out.update({f"{ours}.norm.{p}": f"{fusion}.norm.{p}" for p in _BN})
    return out


def head_names() -> dict[str, str]:
    """Our head keys -> pytorchvideo's: one Linear."""
    return {f"head.classifier.logits.{p}": f"detection_head.proj.{p}" for p in ("weight", "bias")}


def map_state(cfg: ModelConfig, model_state: Mapping[str, Tensor],
              state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Every one of our tensors from theirs; ExportError listing what is left on either side
    (their `num_batches_tracked` counters excepted)."""
    placement = place({**backbone_names(cfg), **head_names()}, model_state, state,
                      ignored=lambda key: key.endswith("." + _IGNORED))
    if (problems := placement.problems()) is not None:
        raise ExportError(f"the pytorchvideo checkpoint does not fit {cfg.name}: {problems}")
    return placement.tensors


def load_pytorchvideo(path: str | Path
                      ) -> tuple[ModelConfig, dict[str, Tensor], dict[str, object]]:
    """-> (our config, our state dict, facts for the manifest)."""
    from model.network import AIA

    path = Path(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for files that are not archives
        raise ExportError(f"{path}: not a readable torch checkpoint: {err}") from None
    state = unwrap(loaded, path)
    cfg = infer_config(state)
    mapped = map_state(cfg, AIA(cfg).state_dict(), state)
    facts = {"source": "pytorchvideo", "file": path.name, "mapping_version": MAPPING_VERSION,
             "tensors": len(state), "preset": cfg.name}
    return cfg, mapped, facts
