"""SSDLite with a MobileNetV2 backbone, as TensorFlow's Object Detection API builds it.

The project's real person detector is a published TensorFlow 1 frozen graph of this network
(`exporters.pedestrian_ssdlite` reads its weights). Rebuilding it here, layer for layer,
lets it run and export to ONNX without TensorFlow. What makes it TensorFlow's and not
torchvision's SSDLite: "SAME" padding (stride-2 convolutions pad only bottom/right on even
sizes), BatchNorm epsilon 1e-3, the legacy bilinear resize (no half-pixel centres), anchors
from the multiple-grid generator (scales 0.2-0.95, a reduced first layer), the Faster R-CNN
box coder with scales (10, 10, 5, 5), sigmoid scores with a background column, NMS before
clipping boxes to the image.

`SSDLiteFrameDetector` is the detector contract's graph (docs/detector.md): one uint8 RGB
frame [H,W,3] of any size -> boxes [K,4] (x1,y1,x2,y2 in the frame's pixels), scores [K],
classes [K] (int64, 1-based as the detector's label map).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import nms

from model.records import flat_from_dict

# MobileNetV2 inverted residual stages: (expansion, output channels, repeats, first stride)
MOBILENET_V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
# SSDLite's extra feature layers after MobileNetV2: (1x1 bottleneck channels, output channels)
EXTRA_LAYERS = ((256, 512), (128, 256), (128, 256), (64, 128))
TAP_BLOCK = 13  # the first feature map is this block's expansion output (19x19x576 at 300 px)


@dataclass(frozen=True)
class SSDLiteConfig:
    """Everything that shapes the network and its decoding; saved in the manifest."""

    classes: tuple[str, ...] = ("person",)  # without background; class id i+1
    input_size: int = 300  # frames are resized to input_size x input_size inside
    min_scale: float = 0.2
    max_scale: float = 0.95
    aspect_ratios: tuple[float, ...] = (1.0, 2.0, 0.5, 3.0, 0.3333)
    box_coder_scales: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
    bn_eps: float = 1e-3
    score_threshold: float = 0.5
    nms_iou: float = 0.6
    max_detections: int = 100

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SSDLiteConfig:
        return flat_from_dict(cls, data)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME": output ceil(size / stride); the odd pixel of padding goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class ConvBN(nn.Module):
    """Conv (TF SAME padding) -> BatchNorm (frozen statistics) -> optional ReLU6."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1,
                 depthwise: bool = False, relu6: bool = True, eps: float = 1e-3) -> None:
        super().__init__()
        self.kernel, self.stride, self.relu6 = kernel, stride, relu6
        self.conv = nn.Conv2d(cin, cout, kernel, stride, groups=cin if depthwise else 1,
                              bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel > 1:  # int(): the network's input size is fixed, so are the pads
            top, bottom = same_padding(int(x.shape[2]), self.kernel, self.stride)
            left, right = same_padding(int(x.shape[3]), self.kernel, self.stride)
            x = F.pad(x, (left, right, top, bottom))
        x = self.bn(self.conv(x))
        return F.relu6(x) if self.relu6 else x


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand (absent at expansion 1) -> 3x3 depthwise -> 1x1 project
    (linear), residual when shape is kept. Returns (output, expansion output)."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int, eps: float) -> None:
        super().__init__()
        hidden = cin * expansion
        self.expand = ConvBN(cin, hidden, eps=eps) if expansion != 1 else None
        self.depthwise = ConvBN(hidden, hidden, 3, stride, depthwise=True, eps=eps)
        self.project = ConvBN(hidden, cout, relu6=False, eps=eps)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        expanded = self.expand(x) if self.expand is not None else x
        out = self.project(self.depthwise(expanded))
        return (out + x if self.residual else out), expanded


class BoxPredictor(nn.Module):
    """One feature map -> box encodings [B, H*W*A, 4] and class logits [B, H*W*A, C+1]:
    a 3x3 depthwise conv (BN, ReLU6) then a 1x1 conv with bias, for each output."""

    def __init__(self, channels: int, anchors: int, num_logits: int, eps: float) -> None:
        super().__init__()
        self.num_logits = num_logits
        self.box_depthwise = ConvBN(channels, channels, 3, depthwise=True, eps=eps)
        self.box = nn.Conv2d(channels, anchors * 4, 1)
        self.class_depthwise = ConvBN(channels, channels, 3, depthwise=True, eps=eps)
        self.cls = nn.Conv2d(channels, anchors * num_logits, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch = x.shape[0]
        boxes = self.box(self.box_depthwise(x)).permute(0, 2, 3, 1)  # [B,H,W,A*4]
        logits = self.cls(self.class_depthwise(x)).permute(0, 2, 3, 1)  # [B,H,W,A*(C+1)]
        return boxes.reshape(batch, -1, 4), logits.reshape(batch, -1, self.num_logits)


def anchor_shapes(cfg: SSDLiteConfig) -> list[list[tuple[float, float]]]:
    """Per feature map, the (scale, aspect ratio) of each anchor at a location."""
    layers = 6
    scales = [cfg.min_scale + (cfg.max_scale - cfg.min_scale) * i / (layers - 1)
              for i in range(layers)] + [1.0]
    out = [[(0.1, 1.0), (scales[0], 2.0), (scales[0], 0.5)]]  # the reduced lowest layer
    for i in range(1, layers):
        shapes = [(scales[i], ratio) for ratio in cfg.aspect_ratios]
        out.append([*shapes, (math.sqrt(scales[i] * scales[i + 1]), 1.0)])
    return out


def grid_anchors(cfg: SSDLiteConfig, sizes: list[int]) -> np.ndarray:
    """float32 [N,4] anchors (ymin, xmin, ymax, xmax), normalised, in the predictors' order
    (rows, then columns, then the anchors of a location), for square maps of `sizes`."""
    out = []
    for size, shapes in zip(sizes, anchor_shapes(cfg), strict=True):
        scale = np.array([s for s, _ in shapes], np.float32)
        ratio = np.sqrt(np.array([r for _, r in shapes], np.float32))
        heights, widths = scale / ratio, scale * ratio  # [A]
        stride = np.float32(1.0) / np.float32(size)
        centres = np.arange(size, dtype=np.float32) * stride + np.float32(0.5) * stride
        cy, cx = np.meshgrid(centres, centres, indexing="ij")  # [S,S]
        cy, cx = cy[:, :, None], cx[:, :, None]  # [S,S,1]
        h, w = heights[None, None, :], widths[None, None, :]  # [1,1,A]
        box = np.stack(np.broadcast_arrays(cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2),
                       axis=-1)  # [S,S,A,4]
        out.append(box.reshape(-1, 4))
    return np.concatenate(out).astype(np.float32)


class SSDLiteMobileNetV2(nn.Module):
    """Normalised image [B,3,S,S] (values in [-1,1]) -> box encodings [B,N,4] and class
    logits [B,N,C+1] over the N anchors of `grid_anchors`."""

    def __init__(self, cfg: SSDLiteConfig) -> None:
        super().__init__()
        eps = cfg.bn_eps
        self.stem = ConvBN(3, 32, 3, 2, eps=eps)
        blocks, cin = [], 32
        for expansion, cout, repeats, stride in MOBILENET_V2_STAGES:
            for i in range(repeats):
                blocks.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expansion,
                                               eps))
                cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.head_conv = ConvBN(cin, 1280, eps=eps)
        extras, cin = [], 1280
        for mid, cout in EXTRA_LAYERS:
            extras.append(nn.Sequential(ConvBN(cin, mid, eps=eps),
                                        ConvBN(mid, mid, 3, 2, depthwise=True, eps=eps),
                                        ConvBN(mid, cout, eps=eps)))
            cin = cout
        self.extras = nn.ModuleList(extras)
        channels = [blocks[TAP_BLOCK].depthwise.conv.in_channels, 1280] + [
            c for _, c in EXTRA_LAYERS]
        anchors = [len(s) for s in anchor_shapes(cfg)]
        self.predictors = nn.ModuleList(
            BoxPredictor(c, a, len(cfg.classes) + 1, eps)
            for c, a in zip(channels, anchors, strict=True))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(image)
        maps = []
        for i, block in enumerate(self.blocks):
            x, expanded = block(x)
            if i == TAP_BLOCK:
                maps.append(expanded)
        x = self.head_conv(x)
        maps.append(x)
        for extra in self.extras:
            x = extra(x)
            maps.append(x)
        outputs = [predict(m) for predict, m in zip(self.predictors, maps, strict=True)]
        return (torch.cat([b for b, _ in outputs], 1),  # [B,N,4]
                torch.cat([c for _, c in outputs], 1))  # [B,N,C+1]


def feature_sizes(input_size: int) -> list[int]:
    """Side of each of the six feature maps for a square input (SAME padding arithmetic)."""
    size = input_size
    for _ in range(4):  # stem and the three stride-2 stages before the tap: 1/16
        size = -(-size // 2)
    sizes = [size, -(-size // 2)]
    for _ in EXTRA_LAYERS:
        sizes.append(-(-sizes[-1] // 2))
    return sizes


def resize_bilinear_legacy(image: torch.Tensor, size: int) -> torch.Tensor:
    """[1,3,H,W] float -> [1,3,size,size], as TensorFlow 1's ResizeBilinear without
    align_corners or half-pixel centres: source = destination * (in / out), clamped."""
    shape = torch._shape_as_tensor(image)  # traced, so H and W stay dynamic in ONNX
    height, width = shape[2], shape[3]
    out = torch.arange(size, dtype=torch.float32)

    def taps(extent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        source = out * (extent.to(torch.float32) / size)
        low = source.floor()
        frac = source - low
        low = low.to(torch.int64)
        high = torch.minimum(low + 1, extent - 1)
        return low, high, frac

    y0, y1, fy = taps(height)
    x0, x1, fx = taps(width)
    top, bottom = image.index_select(2, y0), image.index_select(2, y1)  # [1,3,S,W]
    rows = top + (bottom - top) * fy[None, None, :, None]
    left, right = rows.index_select(3, x0), rows.index_select(3, x1)  # [1,3,S,S]
    return left + (right - left) * fx[None, None, None, :]


class SSDLiteFrameDetector(nn.Module):
    """The detector contract around SSDLiteMobileNetV2: uint8 [H,W,3] RGB -> boxes [K,4]
    (x1,y1,x2,y2 pixels), scores [K], classes [K] int64; threshold and NMS inside."""

    def __init__(self, network: SSDLiteMobileNetV2, cfg: SSDLiteConfig) -> None:
        super().__init__()
        self.network, self.cfg = network.eval(), cfg
        anchors = torch.from_numpy(grid_anchors(cfg, feature_sizes(cfg.input_size)))
        self.register_buffer("anchors", anchors, persistent=False)  # [N,4] y1,x1,y2,x2

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Box encodings [N,4] (ty, tx, th, tw) -> boxes [N,4] (ymin, xmin, ymax, xmax)."""
        a = self.anchors
        ha, wa = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
        cya, cxa = a[:, 0] + ha / 2, a[:, 1] + wa / 2
        sy, sx, sh, sw = self.cfg.box_coder_scales
        cy, cx = codes[:, 0] / sy * ha + cya, codes[:, 1] / sx * wa + cxa
        h, w = torch.exp(codes[:, 2] / sh) * ha, torch.exp(codes[:, 3] / sw) * wa
        return torch.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], 1)

    def forward(self, frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        shape = torch._shape_as_tensor(frame)
        height, width = shape[0].to(torch.float32), shape[1].to(torch.float32)
        image = frame.permute(2, 0, 1).unsqueeze(0).to(torch.float32)  # [1,3,H,W]
        image = resize_bilinear_legacy(image, self.cfg.input_size)
        image = image * (2.0 / 255.0) - 1.0
        codes, logits = self.network(image)  # [1,N,4], [1,N,C+1]
        boxes = self.decode(codes[0])  # [N,4] normalised y1,x1,y2,x2
        scores = torch.sigmoid(logits[0, :, 1:])  # [N,C] without the background column
        best, label = scores.max(1)  # one class per anchor (person-only: the only one)
        keep = torch.nonzero(best >= self.cfg.score_threshold).flatten()
        boxes, best, label = boxes[keep], best[keep], label[keep]
        xyxy = boxes[:, [1, 0, 3, 2]]  # [K,4] x1,y1,x2,y2 normalised
        kept = _batched_nms(xyxy, best, label, self.cfg.nms_iou)[:self.cfg.max_detections]
        xyxy, best, label = xyxy[kept].clamp(0.0, 1.0), best[kept], label[kept]
        area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
        visible = torch.nonzero(area > 0).flatten()  # boxes wholly outside the image go
        scale = torch.stack([width, height, width, height])
        return xyxy[visible] * scale, best[visible], label[visible] + 1


def _batched_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor,
                 iou: float) -> torch.Tensor:
    """Per-class NMS by offsetting each class's boxes apart; indices by descending score."""
    offsets = labels.to(boxes.dtype)[:, None] * 4.0  # normalised boxes fit in [0, 4) apart
    return nms(boxes + offsets, scores, iou)
