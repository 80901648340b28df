"""Initial backbone weights for AVA training from PySlowFast's published Kinetics checkpoints.

`aia train --set model.init=FILE` accepts, besides our own checkpoints and state dicts, the
two forms the SlowFast authors publish: `.pyth` (`{"model_state": state_dict}`) and Caffe2
`.pkl` (`{"blobs": {name: ndarray}}`, read with an unpickler that admits numpy arrays only).
Caffe2 blob names are turned into PySlowFast keys (the naming its c2_model_loading uses),
PySlowFast keys into ours:

- `s1.pathway{0,1}_stem.{conv,bn}` -> `features.backbone.{slow,fast}_stem.{0,1}`
- `s{1..4}_fuse.{conv_f2s,bn}` -> `features.backbone.laterals.{0..3}.{conv,norm}`
- `s{k}.pathway{p}_res{i}.branch1[_bn]` -> `{slow,fast}_stages.{k-2}.{i}.shortcut.{0,1}`
- `s{k}.pathway{p}_res{i}.branch2.{a,b,c}[_bn]` -> `{slow,fast}_stages.{k-2}.{i}.{a,b,c}.{0,1}`

The Kinetics classifier (`head.projection`) and BN step counters are left out on purpose;
anything else that cannot be placed, or a shape that does not fit (a lateral kernel of 7 into
a preset with 5, say), refuses the load with the names.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from model.weight_mapping import place

_C2_BN = {"s": "weight", "b": "bias", "rm": "running_mean", "riv": "running_var"}
SKIPPED = ("head.projection.",)  # the Kinetics classifier: not part of an AVA model


class InitWeightsError(ValueError):
    """Initial weights that cannot be placed; the message lists them."""


class _ArraysOnly(pickle.Unpickler):
    """Caffe2 checkpoints are pickles: admit numpy arrays and nothing that could run code."""

    ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset({
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
        ("collections", "OrderedDict")})

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise InitWeightsError(f"the pickle wants {module}.{name}; a Caffe2 checkpoint "
                                   "holds numpy arrays only")
        return super().find_class(module, name)


def caffe2_key(blob: str) -> str | None:
    """A Caffe2 blob name -> PySlowFast's state-dict key (None: not a model weight)."""
    fast = blob.startswith("t_")
    name, path = blob.removeprefix("t_"), f"pathway{int(blob.startswith('t_'))}"
    if m := re.fullmatch(r"conv1_w", name):
        return f"s1.{path}_stem.conv.weight"
    if m := re.fullmatch(r"res_conv1_bn_(s|b|rm|riv)", name):
        return f"s1.{path}_stem.bn.{_C2_BN[m.group(1)]}"
    if fast and (m := re.fullmatch(r"pool1_subsample(_bn_(s|b|rm|riv)|_w)", name)):
        return "s1_fuse." + (f"bn.{_C2_BN[m.group(2)]}" if m.group(2) else "conv_f2s.weight")
    if fast and (m := re.fullmatch(r"res(\d)_\d+_branch2c_bn_subsample(_bn_(s|b|rm|riv)|_w)",
                                   name)):
        stage = f"s{m.group(1)}_fuse."
        return stage + (f"bn.{_C2_BN[m.group(3)]}" if m.group(3) else "conv_f2s.weight")
    if m := re.fullmatch(r"res(\d)_(\d+)_branch(1|2[abc])(_bn_(s|b|rm|riv)|_w)", name):
        stage, block, branch = m.group(1), m.group(2), m.group(3)
        layer = "branch1" if branch == "1" else f"branch2.{branch[1]}"
        if m.group(5):
            return f"s{stage}.{path}_res{block}.{layer}_bn.{_C2_BN[m.group(5)]}"
        return f"s{stage}.{path}_res{block}.{layer}.weight"
    if m := re.fullmatch(r"pred_(w|b)", blob):
        return f"head.projection.{'weight' if m.group(1) == 'w' else 'bias'}"
    return None


def our_key(key: str) -> str | None:
    """A PySlowFast key -> ours (None: not a backbone weight)."""
    if m := re.fullmatch(r"s1\.pathway([01])_stem\.(conv|bn)\.(\w+)", key):
        stem = ("slow", "fast")[int(m.group(1))]
        layer = "0" if m.group(2) == "conv" else "1"
        return f"features.backbone.{stem}_stem.{layer}.{m.group(3)}"
    if m := re.fullmatch(r"s([1-4])_fuse\.(conv_f2s|bn)\.(\w+)", key):
        layer = "conv" if m.group(2) == "conv_f2s" else "norm"
        return f"features.backbone.laterals.{int(m.group(1)) - 1}.{layer}.{m.group(3)}"
    if m := re.fullmatch(r"s([2-5])\.pathway([01])_res(\d+)\.branch(1|2\.[abc])(_bn)?\.(\w+)",
                         key):
        stages = ("slow", "fast")[int(m.group(2))]
        part = "shortcut" if m.group(4) == "1" else m.group(4)[-1]
        layer = "1" if m.group(5) else "0"
        return (f"features.backbone.{stages}_stages.{int(m.group(1)) - 2}.{m.group(3)}."
                f"{part}.{layer}.{m.group(6)}")
    return None


def read_caffe2(path: Path) -> dict[str, Tensor]:
    """PySlowFast's keys and tensors from a Caffe2 .pkl (numpy arrays only)."""
    with open(path, "rb") as handle:
        data = _ArraysOnly(handle, encoding="latin1").load()
    blobs = data.get("blobs", data) if isinstance(data, dict) else None
    if not isinstance(blobs, dict):
        raise InitWeightsError(f"{path}: a Caffe2 checkpoint holds a dict of 'blobs'")
    return {key: torch.from_numpy(np.ascontiguousarray(value)) for blob, value in blobs.items()
            if (key := caffe2_key(blob)) is not None and isinstance(value, np.ndarray)}


def initial_weights(path: Path, ours: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], str]:
    """(weights to load where keys match, what they are): PySlowFast's .pyth or .pkl with every
    backbone tensor placed, or our own checkpoint / state dict as it is. The file is read once."""
    if path.suffix == ".pkl":
        return backbone_from_pyslowfast(read_caffe2(path), ours), "PySlowFast backbone (Caffe2)"
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    state = loaded.get("model_state") if isinstance(loaded, dict) else None
    if isinstance(state, dict) and any(k.startswith("s1.pathway0_stem.") for k in state):
        return backbone_from_pyslowfast(state, ours), "PySlowFast backbone"
    weights = loaded.get("model", loaded) if isinstance(loaded, dict) else loaded
    return weights, "checkpoint"


def backbone_from_pyslowfast(state: Mapping[str, Tensor], ours: Mapping[str, Tensor]
                             ) -> dict[str, Tensor]:
    """Our backbone tensors from PySlowFast's; InitWeightsError listing what does not fit."""
    names = {mine: key for key in state if (mine := our_key(key)) is not None}
    backbone = {k: v for k, v in ours.items() if k.startswith("features.backbone.")}
    placement = place(names, backbone, state, ignored=lambda key: key.endswith(
        "num_batches_tracked") or key.startswith(SKIPPED))
    if (problems := placement.problems()) is not None:
        raise InitWeightsError(f"PySlowFast weights do not fit this backbone: {problems}")
    return placement.tensors
