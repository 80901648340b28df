from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from model.backbone import FrameConv3d, FrozenBatchNorm3d, build_slowfast, fold_frozen_norms
from model.boxes import enlarge_boxes
from model.complexity import count
from model.config import preset
from model.network import FeatureGraph


def test_tiny_pathway_shapes_follow_strides(tiny_cfg) -> None:
    net = build_slowfast(tiny_cfg.backbone, tiny_cfg.input.alpha)
    slow = torch.randn(2, 3, 2, 128, 160)
    fast = torch.randn(2, 3, 8, 128, 160)
    s, f = net(slow, fast)
    # conv1 /2 -> 64x80, pool1 k3 s2 without padding -> 31x39, res3 /2 -> 16x20, res4 -> 8x10,
    # res5 dilated (stride 1) -> 8x10
    assert s.shape == (2, tiny_cfg.backbone.slow_out, 2, 8, 10)
    assert f.shape == (2, tiny_cfg.backbone.fast_out, 8, 8, 10)


def test_pool1_has_no_padding(tiny_cfg) -> None:
    net = build_slowfast(tiny_cfg.backbone, tiny_cfg.input.alpha)
    assert net.pool1.padding == 0
    stem = net.pool1(net.slow_stem(torch.randn(1, 3, 2, 128, 128)))
    assert stem.shape[-2:] == (31, 31)  # 32x32 with padding


def test_laterals_are_time_strided_by_alpha(tiny_cfg) -> None:
    net = build_slowfast(tiny_cfg.backbone, tiny_cfg.input.alpha)
    for lateral in net.laterals:
        assert lateral.conv.kernel_size == (5, 1, 1)
        assert lateral.conv.stride == (tiny_cfg.input.alpha, 1, 1)
        assert lateral.conv.out_channels == 2 * lateral.conv.in_channels
    res5 = net.slow_stages[3][0].b[0]
    assert res5.stride == (1, 1, 1)
    assert res5.dilation == (1, 2, 2)


def test_frozen_batchnorm_is_same_in_train_and_eval() -> None:
    bn = FrozenBatchNorm3d(4)
    bn.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0, 0.0]))
    bn.running_var.copy_(torch.tensor([4.0, 1.0, 0.25, 9.0]))
    x = torch.randn(3, 4, 2, 5, 5)
    train = bn.train()(x)
    assert torch.equal(train, bn.eval()(x))
    expected = (x - bn.running_mean.view(1, -1, 1, 1, 1)) / torch.sqrt(
        bn.running_var.view(1, -1, 1, 1, 1) + bn.eps
    )
    torch.testing.assert_close(train, expected)
    assert {n for n, _ in bn.named_buffers()} == {"running_mean", "running_var"}


@pytest.mark.parametrize(("name", "expected"), [("r50_4x16", 33.6e6)])
def test_backbone_parameter_count_matches_reference(name: str, expected: float) -> None:
    cfg = preset(name)
    with torch.device("meta"):
        net = build_slowfast(cfg.backbone, cfg.input.alpha)
    assert abs(count(net) - expected) / expected < 0.02


def test_r101_is_deeper_with_same_widths() -> None:
    cfg = preset("r101_8x8")
    with torch.device("meta"):
        net = build_slowfast(cfg.backbone, cfg.input.alpha)
    assert len(net.slow_stages[2]) == 23
    assert net.laterals[0].conv.stride == (4, 1, 1)


def test_feature_graph_samples_pathways_and_pools_boxes(tiny_cfg) -> None:
    graph = FeatureGraph(tiny_cfg).eval()
    clip = torch.randint(0, 256, (2, 16, 128, 160, 3), dtype=torch.uint8)
    slow, fast = graph.pathways(clip)
    assert slow.shape == (2, 3, 2, 128, 160)
    assert fast.shape == (2, 3, 8, 128, 160)
    # frame 0 and frame 8 land in the slow path (every alpha=4th of every 2nd frame)
    expected = (clip[1, 8].permute(2, 0, 1).float() - graph.mean[0, :, 0]) * graph.inv_std[0, :, 0]
    torch.testing.assert_close(slow[1, :, 1], expected)
    boxes = torch.tensor([[0, 0, 0, 60, 100], [1, 20, 30, 150, 120.0], [1, 5, 5, 6, 6]])
    out = graph(clip, boxes)
    assert out.shape == (3, tiny_cfg.feature_dim)
    # the same box on clip 0 alone gives the same feature: rows are independent
    torch.testing.assert_close(graph(clip[:1], boxes[:1]), out[:1])


@pytest.mark.parametrize("k", [0, 1, 7])
def test_feature_graph_any_number_of_boxes(tiny_cfg, k: int) -> None:
    graph = FeatureGraph(tiny_cfg)
    clip = torch.zeros(1, 16, 96, 128, 3, dtype=torch.uint8)
    boxes = torch.tensor([[0, 10, 10, 50, 80.0]]).repeat(k, 1)
    assert graph(clip, boxes).shape == (k, tiny_cfg.feature_dim)


def test_enlarge_boxes_splits_growth_and_clips() -> None:
    boxes = np.array([[10.0, 20.0, 110.0, 220.0], [0.0, 0.0, 50.0, 40.0]])
    out = enlarge_boxes(boxes, (0.1, 0.05), width=105, height=300)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0], [5.0, 15.0, 105.0, 225.0])
    np.testing.assert_allclose(out[1], [0.0, 0.0, 52.5, 41.0])


@pytest.mark.parametrize(("kernel", "stride", "padding", "dilation"), [
    ((1, 3, 3), (1, 2, 2), (0, 1, 1), (1, 1, 1)),
    ((1, 3, 3), (1, 1, 1), (0, 2, 2), (1, 2, 2)),
    ((1, 1, 1), (1, 1, 1), (0, 0, 0), (1, 1, 1)),
    ((3, 1, 1), (1, 1, 1), (1, 0, 0), (1, 1, 1)),  # temporal kernel: the plain 3D path
])
def test_frame_conv_equals_conv3d(kernel, stride, padding, dilation) -> None:
    torch.manual_seed(0)
    plain = torch.nn.Conv3d(6, 5, kernel, stride, padding, dilation, bias=True)
    frames = FrameConv3d(6, 5, kernel, stride, padding, dilation, bias=True)
    frames.load_state_dict(plain.state_dict())  # same keys, same shapes
    x = torch.randn(2, 6, 4, 9, 11)
    torch.testing.assert_close(frames(x), plain(x), atol=1e-5, rtol=1e-5)


def test_folded_norms_give_the_same_features(tiny_cfg) -> None:
    torch.manual_seed(0)
    graph = FeatureGraph(tiny_cfg).eval()
    for m in graph.modules():
        if isinstance(m, FrozenBatchNorm3d):  # statistics far from identity
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.normal_()
            m.bias.data.normal_()
    clip = torch.randint(0, 256, (2, 16, 64, 96, 3), dtype=torch.uint8)
    boxes = torch.tensor([[0, 4, 4, 40, 60.0], [1, 10, 8, 90, 50.0]])
    with torch.no_grad():
        expected = graph(clip, boxes)
        folded = fold_frozen_norms(copy.deepcopy(graph))
        found = folded(clip, boxes)
    assert not any(isinstance(m, FrozenBatchNorm3d) for m in folded.modules())
    scale = expected.abs().max()
    assert float((found - expected).abs().max() / scale) < 1e-5
