"""RoI features: temporal mean per pathway, RoIAlign 7x7 at 1/16, spatial max, concatenation."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import roi_align

from model.config import RoIConfig


class RoIFeatures(nn.Module):
    def __init__(self, cfg: RoIConfig, spatial_scale: float) -> None:
        super().__init__()
        self.output_size = cfg.output_size
        self.sampling_ratio = cfg.sampling_ratio
        self.aligned = cfg.aligned
        self.spatial_scale = spatial_scale

    def pool(self, feature: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        # feature [B,C,T,h,w] -> mean over T [B,C,h,w]; boxes [K,5] -> [K,C,7,7] -> max [K,C]
        pooled = roi_align(
            feature.mean(dim=2),
            boxes,
            output_size=self.output_size,
            spatial_scale=self.spatial_scale,
            sampling_ratio=self.sampling_ratio,
            aligned=self.aligned,
        )
        return pooled.amax(dim=(2, 3))

    def forward(self, slow: torch.Tensor, fast: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """slow [B,Cs,Ts,h,w], fast [B,Cf,Tf,h,w], boxes [K,5] (clip, x1..y2) -> [K,Cs+Cf]."""
        return torch.cat([self.pool(slow, boxes), self.pool(fast, boxes)], dim=1)

