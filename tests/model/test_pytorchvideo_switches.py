"""The switches pytorchvideo's detector needs, each off by default: slow frames picked by
linspace over the fast ones, pool1 padded, a classifier that is one Linear, every class
sigmoid."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from model.backbone import SlowFast
from model.config import (
    AVA_GROUPS,
    ClassifierConfig,
    ConfigError,
    LossKind,
    from_dict,
    preset,
    to_dict,
)
from model.head import Classifier
from model.network import FeatureGraph
from model.postprocess import action_scores


def frame_numbers(frames: torch.Tensor, mean: float, std: float) -> list[int]:
    return (frames[0, 0, :, 0, 0] * std + mean).round().long().tolist()


def test_linspace_picks_pytorchvideos_slow_frames() -> None:
    """64 frames, fast every 2nd, 8 slow: fast frames linspace(0, 31, 8).long() =
    0,4,8,13,17,22,26,31, i.e. clip frames 0,8,16,26,34,44,52,62."""
    cfg = preset("tiny").replace(input={"frames": 64, "alpha": 4, "slow_sampling": "linspace"})
    clip = torch.arange(64).view(1, 64, 1, 1, 1).expand(1, 64, 2, 2, 3).to(torch.uint8)
    slow, fast = FeatureGraph(cfg).pathways(clip)
    mean, std = cfg.input.mean[0], cfg.input.std[0]
    assert frame_numbers(slow, mean, std) == [0, 8, 16, 26, 34, 44, 52, 62]
    assert frame_numbers(fast, mean, std) == list(range(0, 64, 2))
    stride = FeatureGraph(preset("tiny").replace(input={"frames": 64, "alpha": 4}))
    assert frame_numbers(stride.pathways(clip)[0], mean, std) == list(range(0, 64, 8))
    assert "slow_index" not in FeatureGraph(cfg).state_dict()  # a constant, not a weight


def test_slow_sampling_is_validated_and_round_trips() -> None:
    with pytest.raises(ConfigError, match=r"input\.slow_sampling='every'"):
        preset("tiny").replace(input={"slow_sampling": "every"})
    cfg = preset("tiny").replace(input={"slow_sampling": "linspace"},
                                 backbone={"pool1_padding": True})
    assert from_dict(to_dict(cfg)) == cfg
    assert preset("r50_4x16").input.slow_sampling == "stride"
    assert not preset("r50_4x16").backbone.pool1_padding


@pytest.mark.parametrize(("padding", "size"), [(False, 15), (True, 16)])
def test_pool1_padding_output_size(padding: bool, size: int) -> None:
    """A 32x32 stem map: (32 - 3) // 2 + 1 = 15 unpadded, (32 + 2 - 3) // 2 + 1 = 16 padded."""
    backbone = SlowFast(replace(preset("tiny").backbone, pool1_padding=padding), 4)
    out = backbone.pool1(torch.randn(1, 8, 2, 32, 32))
    assert tuple(out.shape[-2:]) == (size, size)


def test_a_classifier_without_hidden_layers_is_one_linear() -> None:
    cfg = ClassifierConfig(hidden=(), dropout=0.5)
    classifier = Classifier(cfg, 24).eval()
    assert set(classifier.state_dict()) == {"logits.weight", "logits.bias"}
    x = torch.randn(3, 24)
    torch.testing.assert_close(classifier(x), x @ classifier.logits.weight.T
                               + classifier.logits.bias)
    with pytest.raises(ConfigError, match=r"classifier\.hidden"):
        ClassifierConfig(hidden=(0,))


def test_groups_can_make_every_class_sigmoid() -> None:
    """AVA's pose group is softmax by default; the loss kind of the group switches it."""
    groups = tuple(replace(g, loss=LossKind.SIGMOID) for g in AVA_GROUPS)
    logits = torch.randn(4, 80)
    torch.testing.assert_close(torch.from_numpy(action_scores(logits.numpy(), groups)),
                               logits.sigmoid())
    pose = action_scores(logits.numpy(), AVA_GROUPS)[:, :14].sum(axis=1)
    torch.testing.assert_close(torch.from_numpy(pose), torch.ones(4))
