"""The contest's scorer preprocessing, exactly, and a differentiable twin for training.

    pairs (B,2,H,W,3) u8 --permute (a view)--> (B,2,3,H,W) --.float()--> channels-last floats
      PoseNet: merge (B,2) --bilinear--> (2B,3,384,512) --yuv6--> (2B,6,192,256) --> (B,12,192,256)
      SegNet:  last frame (B,3,H,W) --bilinear--> (B,3,384,512)

Memory layout matters: torch's CPU bilinear kernel rounds differently for
channels-last and contiguous inputs, so the exact path keeps the official
views (never ``.contiguous()``) up to the interpolation.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tac_core import contract
from tac_core.errors import InputError

KR, KG, KB = 0.299, 0.587, 0.114
U_SCALE, V_SCALE = 1.772, 1.402
CHROMA_OFFSET = 128.0
PIXEL_MAX = 255.0


def as_pairs_tensor(pairs: np.ndarray | torch.Tensor, device: str | torch.device = "cpu") -> torch.Tensor:
    """A uint8 batch of pairs ``(B, 2, H, W, 3)`` as a C-ordered torch tensor on ``device``."""
    if isinstance(pairs, np.ndarray):
        if pairs.dtype != np.uint8:
            raise InputError(f"pairs must be uint8, got {pairs.dtype}")
        contiguous = np.ascontiguousarray(pairs)
        # torch cannot share a read-only buffer (a memory-mapped .raw file, say): copy it.
        pairs = torch.from_numpy(contiguous if contiguous.flags.writeable else contiguous.copy())
    elif not isinstance(pairs, torch.Tensor):
        raise InputError(f"pairs must be a numpy array or torch tensor, got {type(pairs).__name__}")
    if pairs.dtype != torch.uint8:
        raise InputError(f"pairs must be uint8, got {pairs.dtype}")
    if pairs.dim() != 5 or pairs.shape[1] != contract.SEQ_LEN or pairs.shape[-1] != 3:
        raise InputError(f"pairs must have shape (B, 2, H, W, 3), got {tuple(pairs.shape)}")
    if pairs.shape[0] == 0 or pairs.shape[2] < 2 or pairs.shape[3] < 2:
        raise InputError(f"pairs must hold at least one pair of 2x2 frames, got {tuple(pairs.shape)}")
    # The official frames come from a C-ordered buffer; the strides below depend on it.
    return pairs.to(device).contiguous()


def frames_float(pairs: torch.Tensor) -> torch.Tensor:
    """``(B, 2, H, W, 3)`` uint8 as ``(B, 2, 3, H, W)`` float, channels-last in memory, as officially."""
    return pairs.permute(0, 1, 4, 2, 3).float()


def _resize(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=contract.MODEL_INPUT_HW, mode="bilinear", align_corners=False)


def _planes(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Six half-resolution planes: Y at the four 2x2 phases (rows first), then U and V averaged."""
    def phases(p):
        return p[..., 0::2, 0::2], p[..., 1::2, 0::2], p[..., 0::2, 1::2], p[..., 1::2, 1::2]

    u00, u10, u01, u11 = phases(u)
    v00, v10, v01, v11 = phases(v)
    u_sub = (u00 + u10 + u01 + u11) * 0.25
    v_sub = (v00 + v10 + v01 + v11) * 0.25
    return torch.stack([*phases(y), u_sub, v_sub], dim=-3)


def _crop_even(rgb: torch.Tensor) -> torch.Tensor:
    h, w = rgb.shape[-2:]
    return rgb[..., : h - h % 2, : w - w % 2]


def yuv6(rgb: torch.Tensor) -> torch.Tensor:
    """RGB ``(..., 3, H, W)`` float to ``(..., 6, H/2, W/2)`` planes, as the official evaluator does.

    Runs without gradients and clamps in place, like the original; use
    ``yuv6_differentiable`` to train through it.
    """
    with torch.no_grad():
        rgb = _crop_even(rgb)
        r, g, b = rgb[..., 0, :, :], rgb[..., 1, :, :], rgb[..., 2, :, :]
        y = r * KR + g * KG + b * KB
        y.clamp_(0.0, PIXEL_MAX)
        u = (b - y) / U_SCALE + CHROMA_OFFSET
        u.clamp_(0.0, PIXEL_MAX)
        v = (r - y) / V_SCALE + CHROMA_OFFSET
        v.clamp_(0.0, PIXEL_MAX)
        return _planes(y, u, v)


def yuv6_differentiable(rgb: torch.Tensor) -> torch.Tensor:
    """``yuv6`` without in-place ops or no-grad: the same floats, and gradients flow.

    The clamps pass no gradient outside [0, 255], as ``torch.clamp`` does.
    """
    rgb = _crop_even(rgb)
    r, g, b = rgb[..., 0, :, :], rgb[..., 1, :, :], rgb[..., 2, :, :]
    y = torch.clamp(r * KR + g * KG + b * KB, 0.0, PIXEL_MAX)
    u = torch.clamp((b - y) / U_SCALE + CHROMA_OFFSET, 0.0, PIXEL_MAX)
    v = torch.clamp((r - y) / V_SCALE + CHROMA_OFFSET, 0.0, PIXEL_MAX)
    return _planes(y, u, v)


def yuv6_linear(rgb: torch.Tensor) -> torch.Tensor:
    """The linear part of ``yuv6``: how its planes move with a change of ``rgb`` (no chroma offset,
    no clamps)."""
    rgb = _crop_even(rgb)
    r, g, b = rgb[..., 0, :, :], rgb[..., 1, :, :], rgb[..., 2, :, :]
    y = r * KR + g * KG + b * KB
    return _planes(y, (b - y) / U_SCALE, (r - y) / V_SCALE)


def _posenet_input(frames: torch.Tensor, convert, resize=_resize) -> torch.Tensor:
    b, t = frames.shape[:2]
    x = resize(frames.flatten(0, 1))             # a view: (B,2) merge keeps the permuted strides
    planes = convert(x)
    return planes.reshape(b, t * planes.shape[1], *planes.shape[-2:])


def posenet_input(frames: torch.Tensor) -> torch.Tensor:
    """PoseNet input ``(B, 12, 192, 256)`` from ``frames_float`` output, exactly as officially."""
    return _posenet_input(frames, yuv6)


def segnet_input(frames: torch.Tensor) -> torch.Tensor:
    """SegNet input ``(B, 3, 384, 512)``: the last frame of each pair, resized, as officially."""
    return _resize(frames[:, -1])


def posenet_input_differentiable(frames: torch.Tensor) -> torch.Tensor:
    """PoseNet input from float frames ``(B, 2, 3, H, W)`` in 0..255, with gradients.

    Equal to ``posenet_input`` bit for bit when ``frames`` has the same memory
    layout (channels-last, as ``frames_float`` makes it); a contiguous tensor
    gives the same values up to float rounding (about 1e-5).
    """
    if frames.dim() != 5 or frames.shape[1] != contract.SEQ_LEN or frames.shape[2] != 3:
        raise InputError(f"frames must have shape (B, 2, 3, H, W), got {tuple(frames.shape)}")
    return _posenet_input(frames, yuv6_differentiable)


def posenet_planes_differentiable(frames: torch.Tensor) -> torch.Tensor:
    """PoseNet input ``(B, 12, 192, 256)`` from float frames ``(B, 2, 3, 384, 512)`` already at the
    model's input size (the linear camera path's output), with gradients."""
    if (frames.dim() != 5 or frames.shape[1] != contract.SEQ_LEN
            or tuple(frames.shape[2:]) != (3, *contract.MODEL_INPUT_HW)):
        raise InputError(f"frames must have shape (B, 2, 3, {contract.MODEL_INPUT_HW[0]}, "
                         f"{contract.MODEL_INPUT_HW[1]}), got {tuple(frames.shape)}")
    return _posenet_input(frames, yuv6_differentiable, resize=lambda x: x)


def segnet_input_differentiable(frames: torch.Tensor) -> torch.Tensor:
    """SegNet input from float frames ``(B, 2, 3, H, W)`` in 0..255, with gradients."""
    if frames.dim() != 5 or frames.shape[1] != contract.SEQ_LEN or frames.shape[2] != 3:
        raise InputError(f"frames must have shape (B, 2, 3, H, W), got {tuple(frames.shape)}")
    return segnet_input(frames)
