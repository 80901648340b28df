from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.config import preset
from model.network import build_aia
from model.train.config import MemoryMode, TrainConfigError, from_dict, load, to_dict
from model.train.optim import build_optimizer, lr_factor, param_groups

CONFIGS = sorted((Path(__file__).parents[3] / "configs").glob("*.yaml"))


def test_defaults_are_the_reference_recipe() -> None:
    cfg = load(None)
    assert (cfg.optim.lr, cfg.optim.lr_batch, cfg.optim.momentum) == (4e-4, 16, 0.9)
    assert (cfg.optim.ia_lr_mult, cfg.optim.bias_lr_mult, cfg.optim.weight_decay) == (10, 2, 1e-7)
    assert cfg.schedule.milestones == (70_000, 90_000)
    assert (cfg.schedule.warmup_steps, cfg.schedule.warmup_factor) == (2000, 0.25)
    assert cfg.schedule.max_steps == 110_000
    assert cfg.memory.mode is MemoryMode.AMU


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load_and_round_trip(path: Path) -> None:
    cfg = load(path)
    assert from_dict(to_dict(cfg)) == cfg
    preset(cfg.model.preset).replace(**cfg.model.overrides)  # a buildable model config


def test_overrides_parse_values_and_nested_keys(tmp_path) -> None:
    cfg = load(CONFIGS[0], ["optim.lr=0.01", "memory.mode=joint", "schedule.milestones=[5, 9]",
                            "model.overrides.ia.structure=parallel", "bf16=false"])
    assert cfg.optim.lr == 0.01
    assert cfg.memory.mode is MemoryMode.JOINT
    assert cfg.schedule.milestones == (5, 9)
    assert cfg.model.overrides["ia"]["structure"] == "parallel"
    assert cfg.bf16 is False


@pytest.mark.parametrize(
    ("items", "message"),
    [(["optim.lrr=1"], "unknown key"), (["memory.mode=lfb"], "memory.mode"),
     (["optim.lr=-1"], "optim.lr"), (["optim.lr=fast"], "optim.lr"), (["lr"], "key.path=value"),
     (["schedule.milestones=[9, 5]"], "milestones")],
)
def test_bad_values_name_the_key(items: list[str], message: str) -> None:
    with pytest.raises(TrainConfigError, match=message):
        load(None, items)


def test_missing_config_file_is_named(tmp_path) -> None:
    with pytest.raises(TrainConfigError, match=r"nope\.yaml: config file not found"):
        load(tmp_path / "nope.yaml")


def test_param_groups_follow_the_reference(tiny_cfg) -> None:
    model = build_aia(tiny_cfg)
    cfg = load(None).optim
    groups = {g["name"]: g for g in param_groups(model, cfg, lr=1.0)}
    assert groups["ia_weight"]["lr"] == 10.0
    assert groups["ia_bias"]["lr"] == 20.0
    assert groups["net_bias"]["lr"] == 2.0
    assert groups["net_weight"]["lr"] == 1.0
    assert groups["net_bias"]["weight_decay"] == 0.0
    assert groups["net_weight"]["weight_decay"] == 1e-7
    ia_params = sum(p.numel() for p in model.head.ia.parameters())
    assert sum(p.numel() for g in ("ia_weight", "ia_bias") for p in groups[g]["params"]) == (
        ia_params)
    optimizer = build_optimizer(model, cfg, batch_size=8)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(4e-4 * 8 / 16)


def test_warmup_then_steps() -> None:
    sched = load(None).schedule
    assert lr_factor(0, sched) == 0.25
    assert lr_factor(1000, sched) == pytest.approx(0.625)
    assert lr_factor(2000, sched) == 1.0
    assert lr_factor(70_000, sched) == pytest.approx(0.1)
    assert lr_factor(95_000, sched) == pytest.approx(0.01)


def test_adamw_for_training_from_scratch(tiny_cfg) -> None:
    cfg = load(None, ["optim.name=adamw", "optim.lr=0.002", "optim.momentum=0.9"]).optim
    optimizer = build_optimizer(build_aia(tiny_cfg), cfg, batch_size=16)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.999)
    with pytest.raises(TrainConfigError, match=r"optim\.name"):
        load(None, ["optim.name=lion"])
