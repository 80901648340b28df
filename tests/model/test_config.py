from __future__ import annotations

import json

import pytest

from model.config import (
    PRESETS,
    Block,
    ConfigError,
    ModelConfig,
    Structure,
    from_dict,
    preset,
    to_dict,
)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_json(name: str) -> None:
    cfg = preset(name)
    again = from_dict(json.loads(json.dumps(to_dict(cfg))))
    assert again == cfg
    assert isinstance(again.ia.structure, Structure)
    assert all(isinstance(b, Block) for b in again.ia.blocks)


def test_reference_presets_match_design() -> None:
    r50, r101 = preset("r50_4x16"), preset("r101_8x8")
    assert (r50.input.frames, r50.input.fast_frames, r50.input.slow_frames) == (64, 32, 4)
    assert (r101.input.fast_frames, r101.input.slow_frames) == (32, 8)
    assert r50.backbone.stage_blocks == (3, 4, 6, 3)
    assert r101.backbone.stage_blocks == (3, 4, 23, 3)
    assert r50.feature_dim == r101.feature_dim == 2304
    assert (r50.ia.window.span, r50.ia.window.slots) == (61, 300)
    assert "".join(b.value for b in r50.ia.blocks) == "POMPOM"
    assert r50.ia.use_masks
    assert r50.ia.dropout == 0.2
    assert r50.input.mean == (122.77, 115.95, 102.98)
    assert r50.input.std == (57.375,) * 3
    assert r50.spatial_scale == 1 / 16


def test_replace_updates_nested_fields_by_value() -> None:
    cfg = preset("tiny").replace(ia={"structure": "dense", "blocks": ["P", "M"]})
    assert cfg.ia.structure is Structure.DENSE
    assert cfg.ia.blocks == (Block.PERSON, Block.MEMORY)
    assert cfg.backbone == preset("tiny").backbone


@pytest.mark.parametrize(
    ("changes", "field", "value"),
    [
        ({"ia": {"structure": "ring"}}, "ia.structure", "ring"),
        ({"ia": {"blocks": ["P", "X"]}}, "ia.blocks", "X"),
        ({"ia": {"dim_inner": 0}}, "ia.dim_inner", "0"),
        ({"ia": {"dropout": 1.5}}, "ia.dropout", "1.5"),
        ({"ia": {"memory_before": -1}}, "ia.memory_before", "-1"),
        ({"ia": {"structure": "dense", "blocks": ["P"]}}, "ia.blocks", "P"),
        ({"input": {"frames": 30}}, "input.frames", "30"),
        ({"backbone": {"beta_inv": 3}}, "backbone.beta_inv", "3"),
        ({"backbone": {"slow_kernel_t": [1, 1, 2, 3]}}, "backbone.slow_kernel_t", "2"),
        ({"classifier": {"num_classes": 81}}, "classifier.groups", "pose"),
        ({"ia": {"max_persns": 3}}, "max_persns", "max_persons"),
    ],
)
def test_bad_config_names_field_and_value(changes: dict, field: str, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        preset("tiny").replace(**changes)
    assert field in str(err.value)
    assert value in str(err.value)


def test_unknown_preset_lists_known_ones() -> None:
    with pytest.raises(ConfigError, match="r50_4x16"):
        preset("r18")


def test_config_is_frozen() -> None:
    cfg = preset("tiny")
    with pytest.raises(AttributeError):
        cfg.name = "other"  # type: ignore[misc]
    assert isinstance(cfg, ModelConfig)
