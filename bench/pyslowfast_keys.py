"""Checkpoint key facts from PySlowFast's own Kinetics SlowFast models (github
facebookresearch/SlowFast, code only), for the importer's key-coverage test.

Nothing of PySlowFast is copied here: the script puts a checkout of the repository and a
separate target of its pure-Python dependencies on sys.path, builds each model from its own
config file (`get_cfg(); merge_from_file(...); NUM_GPUS = 0; build_model(cfg)`) on CPU and
reads the state dict and the built modules. No weights are downloaded, no forward is run.

    .venv/bin/pip install --no-deps --target /tmp/sfdeps fvcore iopath yacs simplejson \
        psutil termcolor tabulate portalocker
    .venv/bin/python -m bench.pyslowfast_keys --slowfast /tmp/slowfast \
        --extra-path /tmp/sfdeps --out /tmp/pyslowfast_keys

Modules PySlowFast imports but that model construction never uses are stubbed in
sys.modules (see STUBS): detectron2.layers.ROIAlign (RoI head only) and the pytorchvideo
names imported by slowfast.utils.distributed, slowfast.models.batchnorm_helper,
slowfast.models.operators and slowfast.models.losses (the PyPI pytorchvideo 0.1.5 lacks
`cat_all_gather` & co, so the stubs are used even where pytorchvideo is installed).
The optional `slowfast.models.ptv_model_builder` import then fails and PySlowFast skips it
(it prints "Please update your PyTorchVideo to latest master").

Writes OUT/keys-<CONFIG>.json per config: the config path, the SlowFast commit, the two
published checkpoint layouts, every state-dict key with its shape (state-dict order), the
Caffe2 blob name each key is loaded from (None for num_batches_tracked: no blob), and the
architecture facts needed to map the model onto another SlowFast implementation.
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import json
import re
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

CONFIGS = (
    "configs/Kinetics/SLOWFAST_4x16_R50.yaml",
    "configs/Kinetics/SLOWFAST_8x8_R50.yaml",
    "configs/Kinetics/c2/SLOWFAST_8x8_R101_101_101.yaml",
)

STUBS: dict[str, tuple[str, ...]] = {
    "detectron2": (),
    "detectron2.layers": ("ROIAlign",),
    "pytorchvideo": (),
    "pytorchvideo.layers": (),
    "pytorchvideo.layers.distributed": (
        "cat_all_gather",
        "get_local_process_group",
        "get_local_rank",
        "get_local_size",
        "get_world_size",
        "init_distributed_training",
    ),
    "pytorchvideo.layers.batch_norm": ("NaiveSyncBatchNorm1d", "NaiveSyncBatchNorm3d"),
    "pytorchvideo.layers.swish": ("Swish",),
    "pytorchvideo.losses": (),
    "pytorchvideo.losses.soft_target_cross_entropy": ("SoftTargetCrossEntropyLoss",),
}
# Packages (and their submodules) that PySlowFast imports at module level but model building
# never uses (data loading, metrics, optional training helpers), when they are not installed:
# a placeholder module whose every attribute is a placeholder class. The modules actually
# stubbed are recorded as "stubbed_modules" in the output.
STUB_ANY = ("cv2", "pandas", "sklearn", "apex", "fairscale")
STUBBED_ANY: list[str] = []

PYTH_LAYOUT = (
    "torch.save of a dict {'epoch', 'model_state', 'optimizer_state', 'cfg' (cfg.dump() YAML"
    " string), optional 'scaler_state'} (slowfast/utils/checkpoint.py save_checkpoint);"
    " load_checkpoint reads torch.load(f, map_location='cpu')['model_state'] only."
    " model_state = sub_to_normal_bn(model.state_dict()) (model.module's when NUM_GPUS > 1),"
    " so keys carry no 'module.' prefix and equal the plain model.state_dict() keys listed"
    " here (BatchNorm3d models: sub_to_normal_bn changes nothing), including"
    " num_batches_tracked."
)

PKL_LAYOUT = (
    "pickle (load with encoding='latin1') of a dict whose 'blobs' is {caffe2 blob name:"
    " numpy array}; load_checkpoint(convert_from_caffe2=True) maps each name with"
    " c2_model_loading.get_name_convert_func() then c2_normal_to_sub_bn (identity for"
    " BatchNorm3d models), keeps names found in the model state dict, reshapes a blob with"
    " fewer dims by appending 1s and loads it when the shape then equals the model's; blobs"
    " containing 'momentum', 'lr' or 'model_iter' are skipped silently, others unmatched are"
    " warned about; num_batches_tracked has no blob; load_state_dict(strict=False)."
    " caffe2_blobs below is key -> blob name, built by this script and checked by applying"
    " PySlowFast's conversion to each blob name (it must give the key back). The blob shapes"
    " themselves are not known without the .pkl files (expected equal to the key shapes)."
)

KEY_TREE = {
    "stem": "s1.pathway{0 slow,1 fast}_stem.{conv.weight, bn.*}",
    "fusion": "s{1,2,3,4}_fuse.{conv_f2s.weight, bn.*} (after stem, res2, res3, res4)",
    "res_block": (
        "s{2..5}.pathway{p}_res{i}.{branch1.weight, branch1_bn.* (block 0 only),"
        " branch2.{a,b,c}.weight, branch2.{a_bn,b_bn,c_bn}.*}"
    ),
    "bn_suffixes": "weight, bias, running_mean, running_var, num_batches_tracked",
    "head": "head.projection.{weight [400, 2304], bias [400]} (nn.Linear)",
    "caffe2": (
        "slow: conv1_w, res_conv1_bn_{s,b,rm,riv}, res{N}_{i}_branch1_w,"
        " res{N}_{i}_branch1_bn_*, res{N}_{i}_branch2{a,b,c}_w, res{N}_{i}_branch2{a,b,c}_bn_*;"
        " fast: the same with a 't_' prefix (t_conv1_w, t_res_conv1_bn_*, t_res{N}_...);"
        " fusion: t_pool1_subsample_w / t_pool1_subsample_bn_* (s1_fuse),"
        " t_res{N}_{last}_branch2c_bn_subsample_w / ..._subsample_bn_* (s{N}_fuse, last ="
        " index of the stage's last block; the index is dropped by the conversion);"
        " head: pred_w, pred_b"
    ),
}

_BN_SUFFIX = {"weight": "s", "bias": "b", "running_mean": "rm", "running_var": "riv"}
_CONV_SUFFIX = {"weight": "w", "bias": "b"}


def _install_stubs() -> None:
    class _Stub:  # stands in for classes and functions never used while building the model
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("stubbed by bench.pyslowfast_keys: not available")

    for name, attrs in STUBS.items():
        module = types.ModuleType(name)
        module.__path__ = []  # a package, so submodules import
        for attr in attrs:
            setattr(module, attr, type(attr, (_Stub,), {}))
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, module)

    def placeholder(attr: str) -> type:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return type(attr, (_Stub,), {})

    class _AnyFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        """Last on sys.meta_path: answers only for modules no other finder found."""

        def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
            if fullname.split(".")[0] not in STUB_ANY:
                return None
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

        def create_module(self, spec: Any) -> types.ModuleType:
            module = types.ModuleType(spec.name)
            module.__getattr__ = placeholder  # type: ignore[method-assign]
            STUBBED_ANY.append(spec.name)
            return module

        def exec_module(self, module: types.ModuleType) -> None:
            return None

    sys.meta_path.append(_AnyFinder())


def _commit(repo: Path) -> str:
    out = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return out.stdout.strip() or "unknown"


def _caffe2_name(key: str, stage_blocks: dict[int, int]) -> str | None:
    """The Caffe2 blob name PySlowFast loads into state-dict `key` (None: no blob)."""
    module, _, param = key.rpartition(".")
    if param == "num_batches_tracked":
        return None
    is_bn = module.endswith("bn")
    suffix = (_BN_SUFFIX if is_bn else _CONV_SUFFIX)[param]
    if module == "head.projection":
        return f"pred_{suffix}"
    if m := re.fullmatch(r"s1\.pathway([01])_stem\.(conv|bn)", module):
        t = "t_" if m[1] == "1" else ""
        return f"{t}res_conv1_bn_{suffix}" if is_bn else f"{t}conv1_{suffix}"
    if m := re.fullmatch(r"s([1-4])_fuse\.(conv_f2s|bn)", module):
        stage = int(m[1])
        base = (
            "t_pool1_subsample"
            if stage == 1
            else f"t_res{stage}_{stage_blocks[stage] - 1}_branch2c_bn_subsample"
        )
        return f"{base}_bn_{suffix}" if is_bn else f"{base}_{suffix}"
    pattern = r"s([2-5])\.pathway([01])_res([0-9]+)\.(branch1|branch1_bn|branch2\.\w+)"
    if m := re.fullmatch(pattern, module):
        t = "t_" if m[2] == "1" else ""
        part = m[4].replace("branch2.", "branch2")  # branch2.a_bn -> branch2a_bn
        return f"{t}res{m[1]}_{m[3]}_{part}_{suffix}"
    raise ValueError(f"no Caffe2 name rule for {key}")


def _conv(c: nn.Conv3d) -> dict[str, Any]:
    return {
        "in": c.in_channels,
        "out": c.out_channels,
        "kernel": list(c.kernel_size),
        "stride": list(c.stride),
        "padding": list(c.padding),  # type: ignore[arg-type]
        "dilation": list(c.dilation),
        "groups": c.groups,
        "bias": c.bias is not None,
    }


def _pool(p: nn.Module) -> dict[str, Any]:
    def as_list(v: Any) -> Any:
        return list(v) if isinstance(v, (tuple, list)) else v

    return {
        "type": type(p).__name__,
        "kernel": as_list(getattr(p, "kernel_size", None)),
        "stride": as_list(getattr(p, "stride", None)),
        "padding": as_list(getattr(p, "padding", None)),
    }


def _facts(model: nn.Module, cfg: Any) -> dict[str, Any]:
    m: Any = model
    bns = [x for x in model.modules() if isinstance(x, nn.BatchNorm3d)]
    facts: dict[str, Any] = {
        "model_class": type(model).__name__,
        "arch": cfg.MODEL.ARCH,
        "depth": cfg.RESNET.DEPTH,
        "alpha": cfg.SLOWFAST.ALPHA,
        "beta_inv": cfg.SLOWFAST.BETA_INV,
        "frames_slow_fast": [cfg.DATA.NUM_FRAMES // cfg.SLOWFAST.ALPHA, cfg.DATA.NUM_FRAMES],
        "sampling_rate": cfg.DATA.SAMPLING_RATE,
        "train_crop": cfg.DATA.TRAIN_CROP_SIZE,
        "test_crop": cfg.DATA.TEST_CROP_SIZE,
        "bn": {
            "eps": sorted({b.eps for b in bns}),
            "momentum": sorted({b.momentum for b in bns}),
            "types": sorted({type(b).__name__ for b in bns}),
            "count": len(bns),
        },
        "stem": {},
        "fusion": {},
        "pathway_pool_after_res2": {},
        "res_stages": {},
    }
    for p, name in ((0, "slow"), (1, "fast")):
        stem = getattr(m.s1, f"pathway{p}_stem")
        facts["stem"][name] = {
            "conv": _conv(stem.conv),
            "bn_relu": isinstance(stem.bn, nn.BatchNorm3d) and isinstance(stem.relu, nn.ReLU),
            "pool": _pool(stem.pool_layer),
        }
        facts["pathway_pool_after_res2"][name] = _pool(getattr(m, f"pathway{p}_pool"))
    for s in (1, 2, 3, 4):
        fuse = getattr(m, f"s{s}_fuse")
        facts["fusion"][f"s{s}_fuse"] = {
            "conv": _conv(fuse.conv_f2s),
            "bn_relu_after_conv": isinstance(fuse.bn, nn.BatchNorm3d)
            and isinstance(fuse.relu, nn.ReLU),
            "output": "cat([slow, relu(bn(conv_f2s(fast)))], dim=1); fast unchanged",
        }
    for s in (2, 3, 4, 5):
        stage = getattr(m, f"s{s}")
        per: dict[str, Any] = {}
        for p, name in ((0, "slow"), (1, "fast")):
            blocks = [getattr(stage, f"pathway{p}_res{i}") for i in range(stage.num_blocks[p])]
            b0 = blocks[0]
            per[name] = {
                "num_blocks": len(blocks),
                "conv_a_temporal_kernel": [b.branch2.a.kernel_size[0] for b in blocks],
                "conv_b_kernel": list(b0.branch2.b.kernel_size),
                "spatial_stride": b0.branch2.b.stride[1],
                "stride_on": "b (3x3)" if b0.branch2.b.stride[1] > 1 else "none",
                "conv_a_stride": list(b0.branch2.a.stride),
                "conv_b_stride_block0": list(b0.branch2.b.stride),
                "conv_b_dilation": list(b0.branch2.b.dilation),
                "conv_b_padding_block0": list(b0.branch2.b.padding),
                "channels_in_inner_out": [
                    b0.branch2.a.in_channels,
                    b0.branch2.a.out_channels,
                    b0.branch2.c.out_channels,
                ],
                "branch1_blocks": [i for i, b in enumerate(blocks) if hasattr(b, "branch1")],
                "branch1_block0": _conv(b0.branch1) if hasattr(b0, "branch1") else None,
                "conv_bias": any(
                    c.bias is not None for b in blocks for c in (b.branch2.a, b.branch2.b)
                ),
            }
        facts["res_stages"][f"s{s}"] = per
    head = m.head
    facts["head"] = {
        "class": type(head).__name__,
        "pool": {
            name: _pool(getattr(head, f"pathway{p}_avgpool"))
            for p, name in ((0, "slow"), (1, "fast"))
        },
        "dropout": head.dropout.p if hasattr(head, "dropout") else 0.0,
        "projection": {
            "type": type(head.projection).__name__,
            "in": head.projection.in_features,
            "out": head.projection.out_features,
        },
        "act_eval": type(head.act).__name__ if head.act is not None else None,
        "forward": (
            "AvgPool3d per pathway (stride 1), cat on channels, permute to NTHWC, dropout,"
            " Linear; eval: act (Softmax over classes) then mean over T,H,W if > 1x1x1;"
            " view [N, num_classes]"
        ),
        "num_classes": cfg.MODEL.NUM_CLASSES,
    }
    return facts


def run(slowfast: Path, extra: list[Path], out: Path, configs: list[str]) -> list[Path]:
    sys.path[:0] = [str(slowfast), *map(str, extra)]
    _install_stubs()
    from slowfast.config.defaults import get_cfg
    from slowfast.models import build_model
    from slowfast.utils.c2_model_loading import get_name_convert_func

    convert: Callable[[str], str] = get_name_convert_func()
    commit = _commit(slowfast)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for rel in configs:
        cfg = get_cfg()
        cfg.merge_from_file(str(slowfast / rel))
        cfg.NUM_GPUS = 0
        model = build_model(cfg).eval()
        sd = model.state_dict()
        stage_blocks = {s: getattr(model, f"s{s}").num_blocks[1] for s in (2, 3, 4, 5)}
        blobs = {k: _caffe2_name(k, stage_blocks) for k in sd}
        for key, blob in blobs.items():
            if blob is not None and convert(blob) != key:
                raise AssertionError(f"{blob} converts to {convert(blob)}, not {key}")
        name = Path(rel).stem
        doc = {
            "config": rel,
            "slowfast_commit": commit,
            "pyth_layout": PYTH_LAYOUT,
            "pkl_layout": PKL_LAYOUT,
            "key_tree": KEY_TREE,
            "num_entries": len(sd),
            "num_parameters": sum(p.numel() for p in model.parameters()),
            "stubbed_modules": sorted(STUBS) + sorted(set(STUBBED_ANY)),
            "facts": _facts(model, cfg),
            "keys": {k: list(v.shape) for k, v in sd.items()},
            "caffe2_blobs": blobs,
        }
        path = out / f"keys-{name}.json"
        path.write_text(json.dumps(doc, indent=1) + "\n")
        written.append(path)
        print(f"{path}: {len(sd)} entries, {doc['num_parameters']} parameters")
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slowfast", type=Path, required=True, help="SlowFast checkout")
    ap.add_argument("--extra-path", type=Path, action="append", default=[])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--config", action="append", help="config path relative to the checkout")
    args = ap.parse_args()
    run(args.slowfast, args.extra_path, args.out, args.config or list(CONFIGS))


if __name__ == "__main__":
    main()
