"""The reference's behaviours as config switches (what AlphAction's published weights need):
zero-padded slots counted exactly, P keys from the block input, positions after projection,
laterals without BN, centred pathway sampling."""

from __future__ import annotations

import pytest
import torch

from model.config import preset
from model.head import AIAHead
from model.network import FeatureGraph
from tests.model.test_head import STRUCTURES, head_inputs, make_head


def reference_cfg(tiny_cfg, **ia):
    return tiny_cfg.replace(ia={"use_masks": False, "person_keys_from_input": True,
                                "positions_after_projection": True, **ia})


@pytest.mark.parametrize("structure", STRUCTURES)
def test_padded_objects_are_zero_features_up_to_max_objects(tiny_cfg, structure: str) -> None:
    """Masks off: an O block sees max_objects slots, the missing ones zero features; the
    same head given those zero rows explicitly as real objects (masks on) agrees."""
    cfg = reference_cfg(tiny_cfg, blocks=["O", "O"], max_objects=4)
    head = make_head(cfg, structure)
    feats, batch, obj, obj_mask, mem, mem_mask, seconds = head_inputs(cfg, [2, 3], [1, 3],
                                                                      [0, 0])
    out = head(feats, batch, obj, obj_mask, mem, mem_mask, seconds)
    explicit = torch.zeros(2, 4, cfg.feature_dim)
    explicit[:, :3] = obj * obj_mask[..., None]  # the given objects, then zero rows
    masked = AIAHead(cfg.replace(ia={"use_masks": True, "structure": structure})).eval()
    masked.load_state_dict(head.state_dict())
    every = torch.ones(2, 4, dtype=torch.bool)
    torch.testing.assert_close(masked(feats, batch, explicit, every, mem, mem_mask, seconds),
                               out, atol=1e-5, rtol=0)


@pytest.mark.parametrize("structure", STRUCTURES)
def test_masks_off_answers_do_not_depend_on_batch_padding(tiny_cfg, structure: str) -> None:
    """Extra padded object and memory rows (what a shared head batch adds) change nothing."""
    cfg = reference_cfg(tiny_cfg)
    head = make_head(cfg, structure)
    feats, batch, obj, obj_mask, mem, mem_mask, seconds = head_inputs(cfg, [3], [2], [7])
    out = head(feats, batch, obj, obj_mask, mem, mem_mask, seconds)
    d = cfg.feature_dim
    more_obj = torch.cat([obj, torch.randn(1, 3, d)], 1)
    more_obj_mask = torch.cat([obj_mask, torch.zeros(1, 3, dtype=torch.bool)], 1)
    more_mem = torch.cat([mem, torch.randn(1, 4, d)], 1)
    more_mem_mask = torch.cat([mem_mask, torch.zeros(1, 4, dtype=torch.bool)], 1)
    more_seconds = torch.cat([seconds, torch.full((1, 4), -1)], 1)
    torch.testing.assert_close(head(feats, batch, more_obj, more_obj_mask, more_mem,
                                    more_mem_mask, more_seconds), out, atol=1e-5, rtol=0)


def test_each_switch_changes_the_answer(tiny_cfg) -> None:
    """With the same weights, each reference behaviour is a different function."""
    cfg = reference_cfg(tiny_cfg)
    head = make_head(cfg, "serial")
    inputs = head_inputs(cfg, [3], [2], [7])
    out = head(*inputs)
    for switch in ("use_masks", "person_keys_from_input", "positions_after_projection"):
        other = AIAHead(cfg.replace(ia={switch: not getattr(cfg.ia, switch)})).eval()
        other.load_state_dict(head.state_dict())
        assert not torch.allclose(other(*inputs), out, atol=1e-4), switch


def test_one_p_block_keys_the_same_either_way(tiny_cfg) -> None:
    """Only later P blocks take their keys from the block input."""
    cfg = tiny_cfg.replace(ia={"blocks": ["P", "O"]})
    head = make_head(cfg, "serial")
    inputs = head_inputs(cfg, [3], [2], [0])
    other = AIAHead(cfg.replace(ia={"person_keys_from_input": True})).eval()
    other.load_state_dict(head.state_dict())
    torch.testing.assert_close(other(*inputs), head(*inputs))


def test_laterals_without_norm_are_a_biased_conv() -> None:
    cfg = preset("tiny")
    keys = set(FeatureGraph(cfg.replace(backbone={"lateral_norm": False})).state_dict())
    assert "backbone.laterals.0.conv.bias" in keys
    assert not any(".laterals.0.norm." in k for k in keys)
    assert "backbone.laterals.0.norm.running_var" in set(FeatureGraph(cfg).state_dict())


@pytest.mark.parametrize(("name", "slow"), [("r50_4x16", [7, 23, 39, 55]),
                                            ("r101_8x8", [3, 11, 19, 27, 35, 43, 51, 59])])
def test_centred_sampling_picks_the_references_frames(name: str, slow: list[int]) -> None:
    cfg = preset(name).replace(input={"centred_sampling": True})
    graph = FeatureGraph(cfg)
    clip = torch.arange(64).view(1, 64, 1, 1, 1).expand(1, 64, 2, 2, 3).to(torch.uint8)
    slow_frames, fast_frames = graph.pathways(clip)
    std, mean = cfg.input.std[0], cfg.input.mean[0]
    assert (slow_frames[0, 0, :, 0, 0] * std + mean).round().tolist() == slow
    assert (fast_frames[0, 0, :, 0, 0] * std + mean).round().tolist() == list(range(0, 64, 2))
    default = FeatureGraph(preset(name)).pathways(clip)[0]
    assert (default[0, 0, :, 0, 0] * std + mean).round().tolist()[0] == 0  # unchanged default
