"""AlphAction checkpoints (the AIA paper's published AVA models) -> this project's network.

AlphAction (the paper's reference code) saves `{"model": state_dict, ...}` with a `module.`
prefix on every key (multi-GPU training); a raw state dict loads too. Its tree, and where each
tensor goes here:

- `backbone.{slow,fast}.conv1`, `bn1` -> `features.backbone.{slow,fast}_stem.{0,1}`
- `backbone.{p}.res_nl{i}.res_{j}.btnk.conv{1,2,3}.{conv,bn}` ->
  `{p}_stages.{i-1}.{j}.{a,b,c}.{0,1}`; `...shortcut.{conv,bn}` -> `...shortcut.{0,1}`
- `backbone.fast.Tconv{i}.conv` (a conv with bias, no BN) -> `laterals.{i-1}.conv`
  (`lateral_norm=False`)
- `ia_structure.{person,person_key,object,mem}_dim_reduce` (1x1x1 convs) ->
  `head.ia.{query,person,object,memory}_reduce` (Linear)
- `ia_structure.{P,O,M}_block_{n}.{query,key,value,out,shortcut}` -> `head.ia.blocks.{i}.*`,
  i the position of the n-th block of that kind
- `M_block_{n}.temporal_position_{k,v}` [61,1,1024,1,1,1] -> `pos_{key,value}` [61,1024]
- `ia_structure.dense_params.{i}` [i,1024,1,1,1] -> `head.ia.dense_mix.{i-2}` [i,1024]
- `feature_extractor.fc1`, `fc2`, `predictor.cls_score` -> `head.classifier.mlp.0`, `mlp.2`,
  `logits`

The preset follows from the tensors: R50 or R101 (res4 blocks), the IA structure (dense
mixing weights, where the 2304-wide shortcuts are), the memory window (temporal position
table length), and from the file name 4x16 or 8x8 (the weights cannot tell the frame
sampling apart; `--preset` overrides). Reference behaviour is switched on in the config:
laterals without BN, the reference's zero-padded slots (`use_masks=False`) and P keys taken
from the block input (`person_keys_from_input`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor

from exporters.graphs import ExportError
from model.config import Block, ModelConfig, Structure, preset
from model.weight_mapping import place

MAPPING_VERSION = 1
_IA = "roi_heads.action.feature_extractor.ia_structure."
_REDUCE = {"person_dim_reduce": "query_reduce", "person_key_dim_reduce": "person_reduce",
           "object_dim_reduce": "object_reduce", "mem_dim_reduce": "memory_reduce"}
_BN = ("weight", "bias", "running_mean", "running_var")


def strip_prefix(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """AlphAction's loader drops `module.` only when every key carries it; so do we."""
    if state and all(k.startswith("module.") for k in state):
        return {k.removeprefix("module."): v for k, v in state.items()}
    return dict(state)


def unwrap(loaded: object, where: Path) -> dict[str, Tensor]:
    state = loaded.get("model", loaded) if isinstance(loaded, dict) else loaded
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ExportError(f"{where}: not an AlphAction checkpoint (a dict with 'model', or a "
                          "state dict of tensors)")
    return strip_prefix(state)


def infer_config(state: Mapping[str, Tensor], name_hint: str = "",
                 preset_name: str | None = None) -> ModelConfig:
    """The preset these tensors were trained with (see the module docstring)."""
    res4 = {int(m.group(1)) for k in state
            if (m := re.match(r"backbone\.slow\.res_nl3\.res_(\d+)\.", k))}
    depth = "r101" if len(res4) == 23 else "r50" if len(res4) == 6 else None
    if depth is None:
        raise ExportError(f"res4 has {len(res4)} blocks: neither ResNet-50 (6) nor -101 (23)")
    chosen = preset_name or ("r101_8x8" if depth == "r101" or "8x8" in name_hint else
                             "r50_4x16")
    cfg = preset(chosen)
    if (cfg.backbone.stage_blocks[2] == 23) != (depth == "r101"):
        raise ExportError(f"--preset {chosen} does not fit a {depth.upper()} checkpoint")
    ia = replace(cfg.ia, use_masks=False, person_keys_from_input=True,
                 positions_after_projection=True, **_ia_structure(state))
    return replace(cfg, input=replace(cfg.input, centred_sampling=True),
                   backbone=replace(cfg.backbone, lateral_norm=False), ia=ia)


def _ia_structure(state: Mapping[str, Tensor]) -> dict[str, object]:
    blocks = sorted({(int(m.group(2)), m.group(1)) for k in state
                     if (m := re.match(re.escape(_IA) + r"([POM])_block_(\d+)\.", k))})
    if not blocks:
        return {"blocks": ()}  # the baseline: no IA
    order = {"P": 0, "O": 1, "M": 2}
    kinds = tuple(Block(kind) for _, kind in sorted(blocks, key=lambda b: (b[0], order[b[1]])))
    wide = {k for k in state if k.startswith(_IA) and k.endswith("shortcut.weight")}
    if any(k.startswith(_IA + "dense_params.") for k in state):
        structure = Structure.DENSE
    elif len(wide) > 1:
        structure = Structure.PARALLEL  # every branch's last block widens to 2304
    else:
        structure = Structure.SERIAL
    out: dict[str, object] = {"blocks": kinds, "structure": structure}
    table = state.get(_IA + "M_block_1.temporal_position_k")
    if table is not None:
        seconds = table.shape[0]
        out["memory_before"] = out["memory_after"] = (seconds - 1) // 2
    return out


def _conv_bn(ours: str, theirs: str) -> dict[str, str]:
    pairs = {f"{ours}.0.weight": f"{theirs}.conv.weight"}
    pairs.update({f"{ours}.1.{p}": f"{theirs}.bn.{p}" for p in _BN})
    return pairs


def backbone_names(cfg: ModelConfig) -> dict[str, str]:
    """Our backbone keys -> AlphAction's."""
    out: dict[str, str] = {}
    for path in ("slow", "fast"):
        ours, theirs = f"features.backbone.{path}", f"backbone.{path}"
        out[f"{ours}_stem.0.weight"] = f"{theirs}.conv1.weight"
        out.update({f"{ours}_stem.1.{p}": f"{theirs}.bn1.{p}" for p in _BN})
        for i, blocks in enumerate(cfg.backbone.stage_blocks):
            for j in range(blocks):
                mine, src = f"{ours}_stages.{i}.{j}", f"{theirs}.res_nl{i + 1}.res_{j}"
                for part, conv in (("a", "conv1"), ("b", "conv2"), ("c", "conv3")):
                    out.update(_conv_bn(f"{mine}.{part}", f"{src}.btnk.{conv}"))
                out.update(_conv_bn(f"{mine}.shortcut", f"{src}.shortcut"))
    for i in range(4):
        for p in ("weight", "bias"):
            out[f"features.backbone.laterals.{i}.conv.{p}"] = f"backbone.fast.Tconv{i + 1}.conv.{p}"
    return out


def head_names(cfg: ModelConfig) -> dict[str, str]:
    """Our head keys -> AlphAction's."""
    fe = "roi_heads.action.feature_extractor."
    out = {"head.classifier.mlp.0.weight": fe + "fc1.weight", "head.classifier.mlp.0.bias":
           fe + "fc1.bias", "head.classifier.mlp.2.weight": fe + "fc2.weight",
           "head.classifier.mlp.2.bias": fe + "fc2.bias",
           "head.classifier.logits.weight": "roi_heads.action.predictor.cls_score.weight",
           "head.classifier.logits.bias": "roi_heads.action.predictor.cls_score.bias"}
    if not cfg.ia.blocks:
        return out
    for theirs, ours in _REDUCE.items():
        for p in ("weight", "bias"):
            out[f"head.ia.{ours}.{p}"] = f"{_IA}{theirs}.{p}"
    count: dict[Block, int] = {}
    for i, kind in enumerate(cfg.ia.blocks):
        count[kind] = count.get(kind, 0) + 1
        src, mine = f"{_IA}{kind.value}_block_{count[kind]}", f"head.ia.blocks.{i}"
        for layer in ("query", "key", "value", "out", "shortcut"):
            for p in ("weight", "bias"):
                out[f"{mine}.{layer}.{p}"] = f"{src}.{layer}.{p}"
        out[f"{mine}.pos_key"] = f"{src}.temporal_position_k"
        out[f"{mine}.pos_value"] = f"{src}.temporal_position_v"
    for i in range(2, len(cfg.ia.blocks)):
        out[f"head.ia.dense_mix.{i - 2}"] = f"{_IA}dense_params.{i}"
    return out


def map_state(cfg: ModelConfig, model_state: Mapping[str, Tensor],
              state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Every one of our tensors from theirs (1x1x1 convolutions become Linear layers, position
    tables and mixing weights lose their size-1 dims); ExportError listing what is left."""
    placement = place({**backbone_names(cfg), **head_names(cfg)}, model_state, state)
    if (problems := placement.problems()) is not None:
        raise ExportError(
            "the AlphAction checkpoint does not fit the inferred preset "
            f"({cfg.name}, {cfg.ia.structure.value}, {len(cfg.ia.blocks)} IA blocks): "
            + problems)
    return placement.tensors


def load_alphaction(path: str | Path, preset_name: str | None = None
                    ) -> tuple[ModelConfig, dict[str, Tensor], dict[str, object]]:
    """-> (our config, our state dict, facts for the manifest)."""
    from model.network import AIA

    path = Path(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for files that are not archives
        raise ExportError(f"{path}: not a readable torch checkpoint: {err}") from None
    state = unwrap(loaded, path)
    cfg = infer_config(state, path.name, preset_name)
    model_state = AIA(cfg).state_dict()
    mapped = map_state(cfg, model_state, state)
    facts = {"source": "alphaction", "file": path.name, "mapping_version": MAPPING_VERSION,
             "tensors": len(state), "preset": cfg.name, "structure": cfg.ia.structure.value}
    return cfg, mapped, facts
