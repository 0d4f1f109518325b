"""Proxy scorers: small SegNet- and PoseNet-like networks trained on tac's synthetic scenes.

They take exactly the contest scorers' inputs, so ``TorchScorers`` drives them unchanged:

    ProxySegNet   (B,3,384,512) float 0..255 --x/127.5-1--> stride-2 stem (192x256)
                  --encoder to 1/16 (24x32)--> decoder to 1/4 (96x128) --1x1--> 5 logits
                  --bilinear x4--> (B,5,384,512)
    ProxyPoseNet  (B,12,192,256) float 0..255 --(x-127.5)/63.75--> four stride-2 convs (12x16)
                  --average pool to 3x4 cells--> MLP --> 6 standardised pose values,
                  padded to {"pose": (B,12)}

``pose[:, :6]`` is the relative pose [t_x, t_y, t_z, r_x, r_y, r_z] of the pair (frame 2i+1
in frame 2i's camera, as ``tac_core.scenes.poses``), standardised per component:
(pose - pose_mean) / pose_std, both stored in the weight file. ``pose[:, 6:]`` is zero:
the contest scores only the first six outputs, and the proxy predicts nothing there.
The weights ship in ``tac_torch/proxy_weights/`` (float16, loaded as float32); see
docs/proxy-scorers.md.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tac_core import contract
from tac_core.errors import WeightsError

CLASSES = 5
POSE_DIMS = 6
WEIGHTS_DIR = Path(__file__).with_name("proxy_weights")
SEGNET_FILE = "proxy_segnet.safetensors"
POSENET_FILE = "proxy_posenet.safetensors"
FILES = (SEGNET_FILE, POSENET_FILE)
SEG_WIDTHS = (16, 32, 48, 80)       # stem (1/2), 1/4, 1/8, 1/16
POSE_WIDTHS = (24, 32, 48, 64)   # 1/2 .. 1/16 of 192x256
POSE_CELLS = (3, 4)              # pooled grid: where in the image, coarsely (sky, road, sides)
POSE_HIDDEN = 64
YUV_MEAN, YUV_STD = 127.5, 63.75    # the contest PoseNet's input normalisation


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """3x3 convolution, BatchNorm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _Residual(nn.Module):
    """Two 3x3 convolutions with a skip connection (width kept)."""

    def __init__(self, width: int, dilation: int = 1):
        super().__init__()
        self.a = _conv(width, width, dilation=dilation)
        self.b = nn.Sequential(nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation, bias=False),
                               nn.BatchNorm2d(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.b(self.a(x)))


class ProxySegNet(nn.Module):
    """A small encoder-decoder: contest SegNet input in, (B,5,384,512) logits out."""

    def __init__(self, widths: tuple[int, ...] = SEG_WIDTHS):
        super().__init__()
        w0, w1, w2, w3 = widths
        self.stem = _conv(3, w0, stride=2)
        self.down1 = nn.Sequential(_conv(w0, w1, stride=2), _Residual(w1))
        self.down2 = nn.Sequential(_conv(w1, w2, stride=2), _Residual(w2))
        self.down3 = nn.Sequential(_conv(w2, w3, stride=2), _Residual(w3, dilation=2))
        self.up2 = _conv(w3 + w2, w2)
        self.up1 = _conv(w2 + w1, w1)
        self.head = nn.Conv2d(w1, CLASSES, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        f1 = self.down1(self.stem(x / 127.5 - 1.0))
        f2 = self.down2(f1)
        f3 = self.down3(f2)
        u2 = self.up2(torch.cat([F.interpolate(f3, size=f2.shape[-2:], mode="bilinear",
                                               align_corners=False), f2], dim=1))
        u1 = self.up1(torch.cat([F.interpolate(u2, size=f1.shape[-2:], mode="bilinear",
                                               align_corners=False), f1], dim=1))
        return F.interpolate(self.head(u1), size=size, mode="bilinear", align_corners=False)


class ProxyPoseNet(nn.Module):
    """Stacked yuv6 planes of a pair in, ``{"pose": (B,12)}`` out (the first 6 standardised)."""

    def __init__(self, widths: tuple[int, ...] = POSE_WIDTHS, hidden: int = POSE_HIDDEN):
        super().__init__()
        chans = (2 * 6, *widths)
        layers = [_conv(chans[i], chans[i + 1], stride=2) for i in range(len(widths))]
        self.features = nn.Sequential(*layers, _Residual(widths[-1]), nn.AdaptiveAvgPool2d(POSE_CELLS))
        cells = POSE_CELLS[0] * POSE_CELLS[1]
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(widths[-1] * cells, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, POSE_DIMS))
        self.register_buffer("pose_mean", torch.zeros(POSE_DIMS))
        self.register_buffer("pose_std", torch.ones(POSE_DIMS))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        pose6 = self.mlp(self.features((x - YUV_MEAN) / YUV_STD))
        pad = pose6.new_zeros(pose6.shape[0], contract.POSE_OUTPUTS - POSE_DIMS)
        return {"pose": torch.cat([pose6, pad], dim=1)}

    def metric_pose(self, pose: torch.Tensor) -> torch.Tensor:
        """Standardised outputs ``(B, >=6)`` back to metres and radians ``(B, 6)``."""
        return pose[:, :POSE_DIMS] * self.pose_std + self.pose_mean


def build(name: str) -> nn.Module:
    """A fresh proxy network for the weight file ``name``."""
    if name == SEGNET_FILE:
        return ProxySegNet()
    if name == POSENET_FILE:
        return ProxyPoseNet()
    raise WeightsError(f"{name}: not a proxy scorer file; expected one of {', '.join(FILES)}")


def parameter_count(module: nn.Module) -> int:
    """Trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())


def state_for_file(module: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors written to a proxy weight file: float16 floats, no BatchNorm step counters."""
    return {k: (v.half() if v.is_floating_point() else v).contiguous()
            for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}


def as_float32(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A proxy weight file's tensors with float16 widened back to float32."""
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
