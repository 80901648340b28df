"""SlowFast ResNet backbone (Feichtenhofer et al. 2019) as used by AIA.

Reference details kept: frozen BatchNorm statistics, time-strided lateral convs (kernel
(5,1,1), stride alpha, 2x fast channels) after pool1/res2/res3/res4, res5 with spatial stride 1
and dilation 2 (output stride 16), pool1 without padding (`pool1_padding`: pytorchvideo's).
Input is already normalised: slow [B,3,Ts,H,W], fast [B,3,Tf,H,W] with Tf = alpha * Ts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model.config import BackboneConfig


class FrozenBatchNorm3d(nn.Module):
    """BatchNorm whose statistics never update; the affine scale/shift are parameters.

    Same output in train and eval mode, as the reference (BN statistics frozen).
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        shift = self.bias - self.running_mean * scale
        # one pass over x: shift + x * scale
        return torch.addcmul(shift.view(1, -1, 1, 1, 1), x, scale.view(1, -1, 1, 1, 1))


class FrameConv3d(nn.Conv3d):
    """A Conv3d whose kernel spans one frame (1,k,k), run as a 2D convolution over every frame.

    Same weights, keys and result as nn.Conv3d; the frames are folded into the batch so CPU
    backends take their fast 2D path (PyTorch sends single-clip 3D convolutions of this shape
    to its slow reference kernel: 63 of 110 calls of the r50 backbone, measured).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel_size[0] != 1 or self.stride[0] != 1 or self.padding[0] != 0:
            return super().forward(x)
        b, _, t, _, _ = x.shape  # [B,C,T,H,W]
        frames = x.transpose(1, 2).flatten(0, 1)  # [B*T,C,H,W]
        y = F.conv2d(frames, self.weight.squeeze(2), self.bias, self.stride[1:],
                     self.padding[1:], self.dilation[1:], self.groups)  # [B*T,C',H',W']
        return y.unflatten(0, (b, t)).transpose(1, 2)  # [B,C',T,H',W']


def conv_norm(
    c_in: int,
    c_out: int,
    kernel: tuple[int, int, int],
    stride: tuple[int, int, int] = (1, 1, 1),
    dilation: int = 1,
    relu: bool = True,
) -> nn.Sequential:
    padding = (kernel[0] // 2, dilation * (kernel[1] // 2), dilation * (kernel[2] // 2))
    layers: list[nn.Module] = [
        FrameConv3d(c_in, c_out, kernel, stride, padding, dilation=(1, dilation, dilation),
                    bias=False),
        FrozenBatchNorm3d(c_out),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class Bottleneck(nn.Module):
    """(kt,1,1) -> (1,3,3) strided/dilated -> (1,1,1), plus a projection shortcut if needed."""

    def __init__(
        self,
        c_in: int,
        c_inner: int,
        c_out: int,
        kernel_t: int,
        stride: int,
        dilation: int,
    ) -> None:
        super().__init__()
        self.a = conv_norm(c_in, c_inner, (kernel_t, 1, 1))
        self.b = conv_norm(c_inner, c_inner, (1, 3, 3), (1, stride, stride), dilation)
        self.c = conv_norm(c_inner, c_out, (1, 1, 1), relu=False)
        self.shortcut: nn.Module = nn.Identity()
        if c_in != c_out or stride != 1:
            self.shortcut = conv_norm(c_in, c_out, (1, 1, 1), (1, stride, stride), relu=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.shortcut(x) + self.c(self.b(self.a(x))))


def make_stage(
    c_in: int,
    c_inner: int,
    c_out: int,
    blocks: int,
    kernel_t: int,
    stride: int,
    dilation: int,
) -> nn.Sequential:
    layers = [Bottleneck(c_in, c_inner, c_out, kernel_t, stride, dilation)]
    layers += [
        Bottleneck(c_out, c_inner, c_out, kernel_t, 1, dilation) for _ in range(blocks - 1)
    ]
    return nn.Sequential(*layers)


class Lateral(nn.Module):
    """Fast -> slow fusion: time-strided conv, then concatenated to the slow features."""

    def __init__(self, c_fast: int, ratio: int, kernel_t: int, alpha: int,
                 norm: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv3d(c_fast, c_fast * ratio, (kernel_t, 1, 1), (alpha, 1, 1),
                              (kernel_t // 2, 0, 0), bias=not norm)
        # AlphAction's laterals are a plain conv with bias: no norm, no ReLU
        self.norm: nn.Module = FrozenBatchNorm3d(c_fast * ratio) if norm else nn.Identity()
        self.relu: nn.Module = nn.ReLU(inplace=True) if norm else nn.Identity()

    def forward(self, slow: torch.Tensor, fast: torch.Tensor) -> torch.Tensor:
        # fast [B,Cf,Tf,H,W] -> [B,ratio*Cf,Ts,H,W]; slow [B,Cs,Ts,H,W] -> [B,Cs+ratio*Cf,Ts,H,W]
        return torch.cat([slow, self.relu(self.norm(self.conv(fast)))], dim=1)


class SlowFast(nn.Module):
    """Two-pathway ResNet; `forward` returns (slow [B,Cs,Ts,H/16,W/16], fast [B,Cf,Tf,..])."""

    def __init__(self, cfg: BackboneConfig, alpha: int) -> None:
        super().__init__()
        w, wf, e = cfg.stem_width, cfg.fast_stem_width, cfg.expansion
        ratio = cfg.lateral_ratio
        self.slow_stem = conv_norm(3, w, (cfg.slow_stem_kernel_t, 7, 7), (1, 2, 2))
        self.fast_stem = conv_norm(3, wf, (cfg.fast_stem_kernel_t, 7, 7), (1, 2, 2))
        pad = (0, 1, 1) if cfg.pool1_padding else 0  # pytorchvideo pads; the AIA code does not
        self.pool1 = nn.MaxPool3d((1, 3, 3), (1, 2, 2), padding=pad)
        self.laterals = nn.ModuleList()
        self.slow_stages = nn.ModuleList()
        self.fast_stages = nn.ModuleList()
        slow_in, fast_in = w, wf
        for i in range(4):
            self.laterals.append(Lateral(fast_in, ratio, cfg.lateral_kernel, alpha,
                                         cfg.lateral_norm))
            inner, inner_f = w * 2**i, wf * 2**i
            stride = 1 if i == 0 else cfg.res5_stride if i == 3 else 2
            dilation = cfg.res5_dilation if i == 3 else 1
            self.slow_stages.append(make_stage(slow_in + ratio * fast_in, inner, inner * e,
                                               cfg.stage_blocks[i], cfg.slow_kernel_t[i],
                                               stride, dilation))
            self.fast_stages.append(make_stage(fast_in, inner_f, inner_f * e,
                                               cfg.stage_blocks[i], cfg.fast_kernel_t[i],
                                               stride, dilation))
            slow_in, fast_in = inner * e, inner_f * e
        self.reset_parameters(cfg.zero_init_residual)

    def reset_parameters(self, zero_init_residual: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_residual:
            # Residual branches start silent so a network trained from scratch without
            # normalisation statistics starts as a stack of near-identities.
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.c[1].weight)

    def forward(self, slow: torch.Tensor, fast: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        slow = self.pool1(self.slow_stem(slow))
        fast = self.pool1(self.fast_stem(fast))
        for lateral, slow_stage, fast_stage in zip(
            self.laterals, self.slow_stages, self.fast_stages, strict=True
        ):
            slow = slow_stage(lateral(slow, fast))
            fast = fast_stage(fast)
        return slow, fast


def build_slowfast(cfg: BackboneConfig, alpha: int) -> SlowFast:
    return SlowFast(cfg, alpha)


@torch.no_grad()
def fold_frozen_norms(module: nn.Module) -> nn.Module:
    """For inference, in place: each FrozenBatchNorm3d right after a convolution goes into
    the convolution (conv(x) * s + t = conv with weight w * s and bias b * s + t) and becomes
    Identity; one pass over each activation fewer. Returns `module`. State-dict keys change
    (norm keys gone, conv biases added): fold copies that serve, not checkpoints."""
    for parent in list(module.modules()):
        if isinstance(parent, nn.Sequential):
            for i in range(len(parent) - 1):
                conv, norm = parent[i], parent[i + 1]
                if isinstance(conv, nn.Conv3d) and isinstance(norm, FrozenBatchNorm3d):
                    _fold_into(conv, norm)
                    parent[i + 1] = nn.Identity()
        elif isinstance(parent, Lateral) and isinstance(parent.norm, FrozenBatchNorm3d):
            _fold_into(parent.conv, parent.norm)
            parent.norm = nn.Identity()
    return module


def _fold_into(conv: nn.Conv3d, norm: FrozenBatchNorm3d) -> None:
    scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)  # [C]
    shift = norm.bias - norm.running_mean * scale
    conv.weight.mul_(scale.view(-1, 1, 1, 1, 1))
    bias = shift if conv.bias is None else conv.bias * scale + shift
    conv.bias = nn.Parameter(bias.clone(), requires_grad=False)
