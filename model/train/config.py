"""Training configuration: a frozen dataclass tree with the reference recipe as defaults.

Loaded from YAML (`configs/*.yaml`), overridden from the command line with
`--set optim.lr=0.01 --set model.overrides.ia.structure=dense`, printed and saved in every
checkpoint. Defaults are the reference recipe: SGD momentum 0.9, base LR 4e-4 at 16 clips, IA
parameters x10, biases x2 without weight decay, weight decay 1e-7, linear warm-up 2000 steps
from 0.25, steps at 70k/90k, 110k steps.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from model.config import to_dict  # the same dataclass -> plain dict walk as model configs

__all__ = ["TrainConfig", "TrainConfigError", "dump", "from_dict", "load", "to_dict"]


class TrainConfigError(ValueError):
    """A training config value is missing, unknown or invalid; the message names the key."""


class MemoryMode(enum.StrEnum):
    AMU = "amu"  # Algorithm 1: loss-tagged feature bank
    JOINT = "joint"  # neighbour clips forwarded with gradients in the same step
    FROZEN = "frozen"  # neighbours from a frozen copy of the backbone (LFB-style)
    NONE = "none"


@dataclass(frozen=True)
class DataConfig:
    root: str = ""  # dataset directory holding dataset.json
    train_split: str = "train"
    val_split: str = "val"
    batch_size: int = 16  # clips per step, over all ranks
    workers: int = 0
    cache_dir: str | None = None  # decoded windows kept on disk
    person_threshold: float = 0.8  # detector score for validation persons


@dataclass(frozen=True)
class ModelSection:
    preset: str = "r50_4x16"
    overrides: dict[str, Any] = field(default_factory=dict)  # e.g. {"ia": {"structure": "dense"}}
    init: str | None = None  # weights to start from: a state dict or an `aia train` checkpoint


class OptimizerKind(enum.StrEnum):
    SGD = "sgd"  # the reference recipe (fine-tuning Kinetics weights)
    ADAMW = "adamw"  # training from scratch (the synthetic benchmark) converges far faster


@dataclass(frozen=True)
class OptimConfig:
    name: OptimizerKind = OptimizerKind.SGD
    lr: float = 4e-4  # at `lr_batch` clips per step; scaled linearly with the batch size
    lr_batch: int = 16
    momentum: float = 0.9
    weight_decay: float = 1e-7
    ia_lr_mult: float = 10.0
    bias_lr_mult: float = 2.0
    bias_weight_decay: float = 0.0
    grad_clip: float | None = None
    # The reference fine-tunes Kinetics weights with BatchNorm fully frozen. Training from
    # scratch (our synthetic configs) must let the norm scale/shift learn: with
    # zero-initialised residual scales, frozen ones would keep every residual branch silent.
    freeze_norm: bool = False


@dataclass(frozen=True)
class ScheduleConfig:
    max_steps: int = 110_000
    warmup_steps: int = 2_000
    warmup_factor: float = 0.25
    milestones: tuple[int, ...] = (70_000, 90_000)
    gamma: float = 0.1


@dataclass(frozen=True)
class MemoryConfig:
    mode: MemoryMode = MemoryMode.AMU
    bank_capacity: int = 2_000_000  # (video, second) entries
    bank_half: bool = False  # store bank features as float16


@dataclass(frozen=True)
class CheckpointConfig:
    every: int = 1_000
    keep_last: int = 3


@dataclass(frozen=True)
class ValidationConfig:
    every: int = 5_000  # steps; 0 = only at the end
    batch_size: int = 8
    max_videos: int | None = None


@dataclass(frozen=True)
class TrainConfig:
    out_dir: str = "runs/train"
    seed: int = 0
    device: str = "auto"  # auto: cuda when available
    bf16: bool = True  # autocast on CUDA only
    log_every: int = 20
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSection = field(default_factory=ModelSection)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    def __post_init__(self) -> None:
        checks = [
            (self.data.batch_size >= 1, "data.batch_size", self.data.batch_size),
            (self.optim.lr > 0, "optim.lr", self.optim.lr),
            (self.schedule.max_steps >= 1, "schedule.max_steps", self.schedule.max_steps),
            (self.schedule.warmup_steps >= 0, "schedule.warmup_steps",
             self.schedule.warmup_steps),
            (0 < self.schedule.warmup_factor <= 1, "schedule.warmup_factor",
             self.schedule.warmup_factor),
            (list(self.schedule.milestones) == sorted(self.schedule.milestones),
             "schedule.milestones", self.schedule.milestones),
            (self.checkpoint.every >= 1, "checkpoint.every", self.checkpoint.every),
            (self.checkpoint.keep_last >= 1, "checkpoint.keep_last", self.checkpoint.keep_last),
            (self.validation.every >= 0, "validation.every", self.validation.every),
            (self.log_every >= 1, "log_every", self.log_every),
        ]
        for ok, name, value in checks:
            if not ok:
                raise TrainConfigError(f"{name}={value!r} is not valid")


def _coerce(kind: Any, value: Any, where: str) -> Any:
    """YAML/CLI value -> the field's declared type."""
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, Mapping):
            raise TrainConfigError(f"{where}: expected a mapping, got {value!r}")
        return _build(kind, value, where)
    text = str(kind)
    try:
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            return kind(value)
        if value is None and "None" in text:
            return None
        if kind is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if kind is int or text.startswith("int"):
            return int(value)
        if kind is float or text.startswith("float"):
            return float(value)
        if text.startswith("tuple"):
            return tuple(int(v) for v in value)
        if text.startswith("str"):
            return str(value)
    except (ValueError, TypeError) as err:
        raise TrainConfigError(f"{where}={value!r}: expected {text}") from err
    return value


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise TrainConfigError(f"{where or 'config'}: unknown key(s) {unknown}; known: "
                               f"{sorted(names)}")
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}".lstrip(".")) for k, v in data.items()}
    return cls(**kwargs)


def from_dict(data: Mapping[str, Any]) -> TrainConfig:
    return _build(TrainConfig, data, "")


def _set(tree: dict[str, Any], dotted: str, raw: str) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise TrainConfigError(f"--set {dotted}: {key} is not a section")
    node[keys[-1]] = yaml.safe_load(raw) if raw != "" else ""


def load(path: str | Path | None, overrides: Sequence[str] = ()) -> TrainConfig:
    """YAML file (or defaults) + `key.path=value` overrides (values parsed as YAML)."""
    tree: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except FileNotFoundError:
            raise TrainConfigError(f"{path}: config file not found") from None
        except yaml.YAMLError as err:
            raise TrainConfigError(f"{path}: not valid YAML: {err}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise TrainConfigError(f"{path}: the top level must be a mapping")
        tree = loaded or {}
    for item in overrides:
        if "=" not in item:
            raise TrainConfigError(f"--set {item!r}: expected key.path=value")
        key, raw = item.split("=", 1)
        _set(tree, key.strip(), raw)
    return from_dict(tree)


def dump(cfg: TrainConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
