"""Frozen model configuration: every knob of the network is a field here.

The config is saved inside checkpoints and artifact manifests (`to_dict` / `from_dict`), so the
service rebuilds exactly the trained network. Presets: `r50_4x16` and `r101_8x8` follow the
public AIA implementation (docs/architecture.md); `tiny` keeps the same structure, narrow and
shallow, for CPU tests and the synthetic benchmark.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from model.memory_window import MemoryWindow


class ConfigError(ValueError):
    """A config field holds a value the network cannot be built with."""


class Structure(enum.StrEnum):
    SERIAL = "serial"
    PARALLEL = "parallel"
    DENSE = "dense"


class Block(enum.StrEnum):
    PERSON = "P"
    OBJECT = "O"
    MEMORY = "M"


class LossKind(enum.StrEnum):
    SOFTMAX = "softmax"  # one label of the group per person (AVA pose)
    SIGMOID = "sigmoid"  # any number of labels of the group


def _check(ok: bool, name: str, value: object, why: str) -> None:
    if not ok:
        raise ConfigError(f"{name}={value!r}: {why}")


SLOW_SAMPLINGS = ("stride", "linspace")


@dataclass(frozen=True)
class InputConfig:
    """What graph 1 receives: `frames` consecutive frames centred on the key frame."""

    frames: int = 64
    fps: float = 25.0
    fast_stride: int = 2  # the fast pathway takes every 2nd frame
    alpha: int = 8  # the slow pathway takes every alpha-th fast frame
    short_side: int = 256
    max_long_side: int = 464
    mean: tuple[float, float, float] = (122.77, 115.95, 102.98)
    std: tuple[float, float, float] = (57.375, 57.375, 57.375)
    # pathway frames start at the middle of their stride, (stride - 1) // 2, as the
    # reference's SlowFastCrop (R50 4x16 slow frames 7, 23, 39, 55); False: at frame 0
    centred_sampling: bool = False
    # "linspace": slow = fast frames linspace(0, Tf-1, Ts).long() (pytorchvideo's PackPathway)
    slow_sampling: str = "stride"

    def __post_init__(self) -> None:
        _check(self.fast_stride >= 1, "input.fast_stride", self.fast_stride, "must be >= 1")
        _check(self.slow_sampling in SLOW_SAMPLINGS, "input.slow_sampling", self.slow_sampling,
               f"must be one of {list(SLOW_SAMPLINGS)}")
        _check(self.alpha >= 1, "input.alpha", self.alpha, "must be >= 1")
        step = self.fast_stride * self.alpha
        _check(
            self.frames >= step and self.frames % step == 0,
            "input.frames",
            self.frames,
            f"must be a positive multiple of fast_stride*alpha={step}",
        )
        _check(self.fps > 0, "input.fps", self.fps, "must be > 0")
        _check(self.short_side >= 32, "input.short_side", self.short_side, "must be >= 32")
        _check(
            self.max_long_side >= self.short_side,
            "input.max_long_side",
            self.max_long_side,
            f"must be >= short_side={self.short_side}",
        )
        _check(len(self.mean) == 3, "input.mean", self.mean, "needs 3 values (RGB)")
        _check(
            len(self.std) == 3 and all(s > 0 for s in self.std),
            "input.std",
            self.std,
            "needs 3 positive values (RGB)",
        )

    @property
    def fast_frames(self) -> int:
        return self.frames // self.fast_stride

    @property
    def slow_frames(self) -> int:
        return self.fast_frames // self.alpha


@dataclass(frozen=True)
class BackboneConfig:
    """SlowFast ResNet. Widths are slow-pathway widths; the fast pathway has 1/beta_inv of them."""

    stage_blocks: tuple[int, int, int, int] = (3, 4, 6, 3)  # R50; R101 is (3, 4, 23, 3)
    stem_width: int = 64
    expansion: int = 4  # bottleneck output width / inner width
    beta_inv: int = 8
    lateral_kernel: int = 5  # time-strided lateral conv (5,1,1), stride alpha
    lateral_ratio: int = 2  # lateral output channels = ratio * fast channels
    slow_stem_kernel_t: int = 1
    fast_stem_kernel_t: int = 5
    slow_kernel_t: tuple[int, int, int, int] = (1, 1, 3, 3)  # res2..res5 temporal kernels
    fast_kernel_t: tuple[int, int, int, int] = (3, 3, 3, 3)
    res5_dilation: int = 2  # res5 spatial stride 1, dilation 2: output stride 16
    # lateral conv followed by BatchNorm + ReLU (PySlowFast); False: a conv with bias and
    # nothing after it (AlphAction, the AIA reference's published weights)
    lateral_norm: bool = True
    pool1_padding: bool = False  # True: pool1 pads (0,1,1), as pytorchvideo's stems
    res5_stride: int = 1  # 2 with res5_dilation 1: the Kinetics classifiers' backbone
    zero_init_residual: bool = True  # last norm of each residual branch starts at 0

    def __post_init__(self) -> None:
        _check(
            len(self.stage_blocks) == 4 and all(b >= 1 for b in self.stage_blocks),
            "backbone.stage_blocks",
            self.stage_blocks,
            "needs 4 stages of >= 1 block",
        )
        _check(self.stem_width >= 1, "backbone.stem_width", self.stem_width, "must be >= 1")
        _check(
            self.beta_inv >= 1 and self.stem_width % self.beta_inv == 0,
            "backbone.beta_inv",
            self.beta_inv,
            f"must divide stem_width={self.stem_width}",
        )
        _check(self.expansion >= 1, "backbone.expansion", self.expansion, "must be >= 1")
        for name in ("lateral_kernel", "slow_stem_kernel_t", "fast_stem_kernel_t"):
            value = getattr(self, name)
            _check(value >= 1 and value % 2 == 1, f"backbone.{name}", value, "must be odd >= 1")
        for name in ("slow_kernel_t", "fast_kernel_t"):
            value = getattr(self, name)
            _check(
                len(value) == 4 and all(k >= 1 and k % 2 == 1 for k in value),
                f"backbone.{name}",
                value,
                "needs 4 odd kernel sizes",
            )
        _check(self.lateral_ratio >= 1, "backbone.lateral_ratio", self.lateral_ratio, ">= 1")
        _check(self.res5_dilation >= 1, "backbone.res5_dilation", self.res5_dilation, ">= 1")

    @property
    def fast_stem_width(self) -> int:
        return self.stem_width // self.beta_inv

    @property
    def slow_out(self) -> int:
        return self.stem_width * 8 * self.expansion  # res5 inner width is 8x the stem

    @property
    def fast_out(self) -> int:
        return self.fast_stem_width * 8 * self.expansion

    @property
    def stride(self) -> int:
        # conv1 /2, pool1 /2, res3 /2, res4 /2, res5 dilated instead of strided
        return 16


@dataclass(frozen=True)
class RoIConfig:
    output_size: int = 7
    sampling_ratio: int = 0
    aligned: bool = False
    # test boxes grow by this fraction of their width / height (split over both sides)
    test_enlarge: tuple[float, float] = (0.1, 0.05)

    def __post_init__(self) -> None:
        _check(self.output_size >= 1, "roi.output_size", self.output_size, "must be >= 1")
        _check(self.sampling_ratio >= 0, "roi.sampling_ratio", self.sampling_ratio, ">= 0")
        _check(
            len(self.test_enlarge) == 2 and all(e >= 0 for e in self.test_enlarge),
            "roi.test_enlarge",
            self.test_enlarge,
            "needs (width fraction, height fraction), both >= 0",
        )


@dataclass(frozen=True)
class IAConfig:
    """Interaction Aggregation head. An empty block list is the no-IA baseline."""

    structure: Structure = Structure.SERIAL
    blocks: tuple[Block, ...] = (Block.PERSON, Block.OBJECT, Block.MEMORY) * 2
    dim_inner: int = 1024
    max_persons: int = 25  # person slots per clip, the target included
    max_objects: int = 5
    persons_per_second: int = 5  # memory slots per second
    memory_before: int = 30  # seconds of memory before the key frame
    memory_after: int = 30
    # off: the reference's fixed zero-padded slots take part in the softmax (max_persons
    # zero keys per clip, max_objects and persons_per_second per memory second zero features)
    use_masks: bool = True
    # P blocks after the first of their chain attend over the block's input of every person
    # of the clip, not the reduced person features (the reference: `person_key = query`)
    person_keys_from_input: bool = False
    # M blocks add the per-second position vectors to the projected keys and values (the
    # reference) rather than to the block's key/value input
    positions_after_projection: bool = False
    # M blocks also attend over the clip's own persons at second 0 (the reference). Off, the
    # memory holds neighbouring seconds only, so person-person context of the key second comes
    # from P blocks alone: Table 1's "without P" isolates person interaction this way
    memory_current: bool = True
    dropout: float = 0.2

    def __post_init__(self) -> None:
        _check(
            isinstance(self.structure, Structure),
            "ia.structure",
            self.structure,
            f"must be one of {[s.value for s in Structure]}",
        )
        _check(
            all(isinstance(b, Block) for b in self.blocks),
            "ia.blocks",
            self.blocks,
            f"entries must be in {[b.value for b in Block]}",
        )
        if self.structure is Structure.DENSE:
            _check(len(self.blocks) >= 2, "ia.blocks", self.blocks, "dense needs >= 2 blocks")
        _check(self.dim_inner >= 1, "ia.dim_inner", self.dim_inner, "must be >= 1")
        _check(self.max_persons >= 1, "ia.max_persons", self.max_persons, "must be >= 1")
        _check(self.max_objects >= 1, "ia.max_objects", self.max_objects, "must be >= 1")
        _check(
            self.persons_per_second >= 1,
            "ia.persons_per_second",
            self.persons_per_second,
            "must be >= 1",
        )
        _check(self.memory_before >= 0, "ia.memory_before", self.memory_before, "must be >= 0")
        _check(self.memory_after >= 0, "ia.memory_after", self.memory_after, "must be >= 0")
        _check(0.0 <= self.dropout < 1.0, "ia.dropout", self.dropout, "must be in [0, 1)")

    @property
    def window(self) -> MemoryWindow:
        return MemoryWindow(self.memory_before, self.memory_after, self.persons_per_second)

    def uses(self, block: Block) -> bool:
        return block in self.blocks


@dataclass(frozen=True)
class ClassGroup:
    """A contiguous range of action ids sharing one loss (AVA: pose, object, person)."""

    name: str
    first_id: int
    last_id: int
    loss: LossKind
    weight: float

    def __post_init__(self) -> None:
        _check(
            1 <= self.first_id <= self.last_id,
            f"classifier.groups[{self.name}].first_id",
            self.first_id,
            f"must be in [1, last_id={self.last_id}]",
        )
        _check(isinstance(self.loss, LossKind), "classifier.groups.loss", self.loss, "unknown")
        _check(self.weight >= 0, f"classifier.groups[{self.name}].weight", self.weight, ">= 0")

    @property
    def size(self) -> int:
        return self.last_id - self.first_id + 1


AVA_GROUPS: tuple[ClassGroup, ...] = (
    ClassGroup("pose", 1, 14, LossKind.SOFTMAX, 1.2),
    ClassGroup("object", 15, 63, LossKind.SIGMOID, 49.0),
    ClassGroup("person", 64, 80, LossKind.SIGMOID, 17.0),
)


@dataclass(frozen=True)
class ClassifierConfig:
    hidden: tuple[int, ...] = (1024, 1024)
    dropout: float = 0.2
    num_classes: int = 80
    groups: tuple[ClassGroup, ...] = AVA_GROUPS

    def __post_init__(self) -> None:
        _check(
            all(h >= 1 for h in self.hidden),  # () is a single Linear (pytorchvideo's head)
            "classifier.hidden",
            self.hidden,
            "widths must be positive",
        )
        _check(0.0 <= self.dropout < 1.0, "classifier.dropout", self.dropout, "in [0, 1)")
        _check(self.num_classes >= 1, "classifier.num_classes", self.num_classes, ">= 1")
        covered = sorted(i for g in self.groups for i in range(g.first_id, g.last_id + 1))
        _check(
            covered == list(range(1, self.num_classes + 1)),
            "classifier.groups",
            [(g.name, g.first_id, g.last_id) for g in self.groups],
            f"must cover ids 1..{self.num_classes} exactly once",
        )


@dataclass(frozen=True)
class ModelConfig:
    name: str
    input: InputConfig = field(default_factory=InputConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    roi: RoIConfig = field(default_factory=RoIConfig)
    ia: IAConfig = field(default_factory=IAConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)

    @property
    def feature_dim(self) -> int:
        return self.backbone.slow_out + self.backbone.fast_out

    @property
    def spatial_scale(self) -> float:
        return 1.0 / self.backbone.stride

    def replace(self, **changes: Any) -> ModelConfig:
        """`cfg.replace(ia={"structure": "dense"})`: nested dicts update sub-configs."""
        updates: dict[str, Any] = {}
        for key, value in changes.items():
            current = getattr(self, key)
            if dataclasses.is_dataclass(current) and isinstance(value, Mapping):
                merged = {**to_dict(current), **value}
                updates[key] = _build(type(current), merged, key)
            else:
                updates[key] = value
        return dataclasses.replace(self, **updates)


# ---------------------------------------------------------------------------------------------
# (de)serialisation: plain JSON-able dicts, enums as their values, tuples as lists


def to_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    return obj


def _enum_tuple(kind: type[enum.Enum]) -> Callable[[Any, str], tuple[Any, ...]]:
    def convert(values: Any, where: str) -> tuple[Any, ...]:
        try:
            return tuple(kind(v) for v in values)
        except (ValueError, TypeError) as err:
            known = [k.value for k in kind]
            raise ConfigError(f"{where}={values!r}: entries must be in {known}") from err

    return convert


def _enum(kind: type[enum.Enum]) -> Callable[[Any, str], Any]:
    def convert(value: Any, where: str) -> Any:
        try:
            return kind(value)
        except ValueError as err:
            known = [k.value for k in kind]
            raise ConfigError(f"{where}={value!r}: must be one of {known}") from err

    return convert


def _groups(values: Any, where: str) -> tuple[ClassGroup, ...]:
    return tuple(_build(ClassGroup, dict(v), f"{where}[{i}]") for i, v in enumerate(values))


_CONVERTERS: dict[tuple[type, str], Callable[[Any, str], Any]] = {
    (IAConfig, "structure"): _enum(Structure),
    (IAConfig, "blocks"): _enum_tuple(Block),
    (ClassGroup, "loss"): _enum(LossKind),
    (ClassifierConfig, "groups"): _groups,
}
_NESTED: dict[str, type] = {
    "input": InputConfig,
    "backbone": BackboneConfig,
    "roi": RoIConfig,
    "ia": IAConfig,
    "classifier": ClassifierConfig,
}


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; known: {sorted(names)}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        convert = _CONVERTERS.get((cls, key))
        if convert is not None:
            kwargs[key] = convert(value, f"{where}.{key}")
        elif cls is ModelConfig and key in _NESTED:
            kwargs[key] = value if not isinstance(value, Mapping) else _build(
                _NESTED[key], value, key
            )
        elif isinstance(value, list):
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = value
    return cls(**kwargs)


def from_dict(data: Mapping[str, Any]) -> ModelConfig:
    """Inverse of `to_dict`; unknown or invalid fields raise ConfigError naming them."""
    return _build(ModelConfig, data, "model")


# ---------------------------------------------------------------------------------------------
# presets


def r50_4x16() -> ModelConfig:
    """SlowFast R50 4x16 (slow every 16th frame) with the dense-free serial IA of the paper."""
    return ModelConfig(name="r50_4x16")


def r101_8x8() -> ModelConfig:
    return ModelConfig(
        name="r101_8x8",
        input=InputConfig(alpha=4),
        backbone=BackboneConfig(stage_blocks=(3, 4, 23, 3)),
    )


def tiny() -> ModelConfig:
    """Same structure, narrow and shallow: 16 frames at short side 128, 4 s of memory each way."""
    return ModelConfig(
        name="tiny",
        input=InputConfig(frames=16, fps=25.0, fast_stride=2, alpha=4, short_side=128,
                          max_long_side=224),
        backbone=BackboneConfig(stage_blocks=(1, 1, 1, 1), stem_width=8, beta_inv=4),
        ia=IAConfig(dim_inner=64, max_persons=8, max_objects=5, persons_per_second=3,
                    memory_before=4, memory_after=4),
        classifier=ClassifierConfig(hidden=(128, 128)),
    )


PRESETS: dict[str, Callable[[], ModelConfig]] = {
    "r50_4x16": r50_4x16,
    "r101_8x8": r101_8x8,
    "tiny": tiny,
}


def preset(name: str) -> ModelConfig:
    if name not in PRESETS:
        raise ConfigError(f"preset={name!r}: must be one of {sorted(PRESETS)}")
    return PRESETS[name]()

