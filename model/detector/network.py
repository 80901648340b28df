"""The detector network: torchvision's Faster R-CNN on a small from-scratch backbone with an
FPN, sized for small frames (persons ~20-60 px tall, objects ~8-15 px), and `FrameDetector`,
the one-frame module that is exported (uint8 [H,W,3] in, boxes/scores/classes out)."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign

from model.detector.config import DetectorConfig


def _stage(in_channels: int, out_channels: int) -> nn.Sequential:
    """Halves the resolution: strided 3x3 conv then a 3x3 conv, each with BN and ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
    )


class SmallBackbone(nn.Module):
    """Stages at strides 2, 4, 8, 16 (named stage0..3; the FPN reads stages 1..3)."""

    def __init__(self, widths: tuple[int, ...]) -> None:
        super().__init__()
        channels = (3, *widths)
        for i in range(len(widths)):
            self.add_module(f"stage{i}", _stage(channels[i], channels[i + 1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.children():
            x = stage(x)
        return x


def build_detector(cfg: DetectorConfig) -> FasterRCNN:
    """Random-initialised Faster R-CNN (nothing downloaded); eval() before inference."""
    body = SmallBackbone(cfg.widths)
    levels = len(cfg.widths) - 1
    backbone = BackboneWithFPN(
        body, return_layers={f"stage{i + 1}": str(i) for i in range(levels)},
        in_channels_list=list(cfg.widths[1:]), out_channels=cfg.fpn_channels)
    anchors = AnchorGenerator(sizes=tuple((s,) for s in cfg.anchor_sizes),
                              aspect_ratios=(cfg.aspect_ratios,) * len(cfg.anchor_sizes))
    # small boxes: route RoIs of ~64 px to stride 8, smaller ones to stride 4
    pooler = MultiScaleRoIAlign([str(i) for i in range(levels)], output_size=7,
                                sampling_ratio=2, canonical_scale=64, canonical_level=3)
    return FasterRCNN(
        backbone, num_classes=None, min_size=cfg.min_size, max_size=cfg.max_size,
        image_mean=[0.5, 0.5, 0.5], image_std=[0.25, 0.25, 0.25],
        rpn_anchor_generator=anchors, box_roi_pool=pooler,
        rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_train=300,
        rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=100,
        rpn_batch_size_per_image=128, box_batch_size_per_image=128,
        box_score_thresh=cfg.score_threshold, box_nms_thresh=cfg.nms_iou,
        box_detections_per_img=cfg.max_detections,
        box_head=TwoMLPHead(cfg.fpn_channels * 7 * 7, cfg.head_channels),
        box_predictor=FastRCNNPredictor(cfg.head_channels, cfg.num_classes),
    )


class FrameDetector(nn.Module):
    """One uint8 RGB frame [H,W,3] -> boxes [K,4] (x1,y1,x2,y2 in the frame's pixels),
    scores [K], class ids [K] (int64; 1 = person), score threshold and NMS applied; the
    network resizes internally."""

    def __init__(self, detector: FasterRCNN) -> None:
        super().__init__()
        self.detector = detector.eval()

    def forward(self, frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image = frame.permute(2, 0, 1).float().div(255.0)  # [3,H,W]
        found: list[dict[str, torch.Tensor]] = self.detector([image])
        out = found[0]
        return out["boxes"], out["scores"], out["labels"]


def state_dict_of(model: nn.Module) -> OrderedDict[str, torch.Tensor]:
    return OrderedDict((k, v.detach().cpu()) for k, v in model.state_dict().items())
