"""The two graphs (docs/architecture.md, "two graphs") and the joined model used in training.

Graph 1 `FeatureGraph`: uint8 clip + boxes -> RoI features (normalisation and slow/fast
sampling inside). Graph 2 `AIAHead`: features + objects + memory -> logits. `AIA` joins them
for training: one backbone pass for persons and objects, then the head.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from model.backbone import SlowFast, build_slowfast
from model.config import ModelConfig
from model.head import AIAHead
from model.roi import RoIFeatures
from model.slots import pad_per_clip


class FeatureGraph(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.fast_stride = cfg.input.fast_stride
        self.alpha = cfg.input.alpha
        slow_stride = cfg.input.fast_stride * cfg.input.alpha
        centred = cfg.input.centred_sampling
        self.fast_start = (self.fast_stride - 1) // 2 if centred else 0
        self.slow_start = (slow_stride - 1) // 2 if centred else 0
        self.backbone: SlowFast = build_slowfast(cfg.backbone, cfg.input.alpha)
        self.roi = RoIFeatures(cfg.roi, cfg.spatial_scale)
        # constants of the config, not weights: kept out of the state dict
        self.register_buffer("mean", torch.tensor(cfg.input.mean).view(1, 3, 1, 1, 1),
                             persistent=False)
        self.register_buffer("inv_std", 1.0 / torch.tensor(cfg.input.std).view(1, 3, 1, 1, 1),
                             persistent=False)
        # linspace sampling: slow frames = these fast frames (an index, so ONNX sees a Gather)
        fast_frames, slow_frames = cfg.input.fast_frames, cfg.input.slow_frames
        index = torch.linspace(0, fast_frames - 1, slow_frames).long()
        self.slow_linspace = cfg.input.slow_sampling == "linspace"
        self.register_buffer("slow_index", index, persistent=False)

    def pathways(self, clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """clip uint8 [B,T,H,W,3] -> normalised slow [B,3,T/(fs*alpha),H,W], fast [B,3,T/fs,H,W]."""
        # frames are picked from the uint8 clip first: only those are converted and normalised
        fast = self.normalise(clip[:, self.fast_start :: self.fast_stride])
        if self.slow_linspace:
            return fast.index_select(2, self.slow_index), fast
        return self.normalise(clip[:, self.slow_start :: self.fast_stride * self.alpha]), fast

    def normalise(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 [B,t,H,W,3] -> float [B,3,t,H,W], (x - mean) / std."""
        x = frames.permute(0, 4, 1, 2, 3).to(self.mean.dtype)  # [B,3,t,H,W]
        return (x - self.mean) * self.inv_std

    def forward(self, clip: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """clip uint8 [B,T,H,W,3], boxes [K,5] (clip index, x1, y1, x2, y2 in pixels) -> [K,D]."""
        slow, fast = self.backbone(*self.pathways(clip))
        return self.roi(slow, fast, boxes)


class AIAOutput(NamedTuple):
    logits: torch.Tensor  # [N,A]
    person_features: torch.Tensor  # [N,D] pre-IA, what the AMU bank stores


class AIA(nn.Module):
    """Features + head in one module: the training graph. Same weights as the two graphs."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.features = FeatureGraph(cfg)
        self.head = AIAHead(cfg)

    def forward(
        self,
        clip: torch.Tensor,
        person_boxes: torch.Tensor,
        object_boxes: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor,
        memory_seconds: torch.Tensor,
    ) -> AIAOutput:
        """
        clip uint8 [B,T,H,W,3]; person_boxes [N,5], object_boxes [K,5] (clip index first,
        objects of a clip ordered by score); memory [B,M,D] + mask [B,M] + seconds [B,M].
        """
        n = person_boxes.shape[0]
        feats = self.features(clip, torch.cat([person_boxes, object_boxes], dim=0))  # [N+K,D]
        person, objects = feats[:n], feats[n:]
        person_batch = person_boxes[:, 0].long()
        object_feats, object_mask = pad_per_clip(objects, object_boxes[:, 0].long(),
                                                 clip.shape[0], self.cfg.ia.max_objects)
        logits = self.head(person, person_batch, object_feats, object_mask,
                           memory, memory_mask, memory_seconds)
        return AIAOutput(logits, person)


def build_aia(cfg: ModelConfig) -> AIA:
    return AIA(cfg)


def empty_memory(
    cfg: ModelConfig, num_clips: int, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """No neighbours: memory [B,0,D], mask [B,0], seconds [B,0]."""
    return (
        torch.zeros(num_clips, 0, cfg.feature_dim, dtype=dtype),
        torch.zeros(num_clips, 0, dtype=torch.bool),
        torch.zeros(num_clips, 0, dtype=torch.long),
    )


def no_objects(
    cfg: ModelConfig, num_clips: int, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """object_feats [B,0,D], object_mask [B,0]."""
    return (torch.zeros(num_clips, 0, cfg.feature_dim, dtype=dtype),
            torch.zeros(num_clips, 0, dtype=torch.bool))
