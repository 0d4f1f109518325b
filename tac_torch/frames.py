"""Rendered pairs to the uint8 camera frames an inflate writes: one definition, shared by
training (``tac_torch.chain``) and the inflate runtime (vendored into every submission).

    pairs (B,2,3,h,w) float 0..255 [+ the archive's sidecars: output bias, pose field]
      --bicubic (align_corners=False) to 874x1164-->
      --clamp 0..255--> --round half to even (straight-through gradient)--> (B,2,3,H,W) float
      --uint8, channels last--> (B,2,H,W,3) uint8

Needs torch and ``tac_core.contract`` / ``tac_core.errors`` only, so a submission can carry it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tac_core import contract
from tac_core.architectures import output_bias, pose_field
from tac_core.errors import InputError


class _RoundStraightThrough(torch.autograd.Function):
    """Forward: round half to even; backward: the gradient unchanged."""

    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """``torch.round(x)`` whose gradient is the identity (straight-through)."""
    return _RoundStraightThrough.apply(x)


def _check_frames(frames: torch.Tensor) -> None:
    if not isinstance(frames, torch.Tensor) or frames.dim() != 5 or frames.shape[1:3] != (contract.SEQ_LEN, 3):
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise InputError(f"rendered pairs must be a float tensor (B, 2, 3, H, W), got {shape}")


def add_output_bias(frames: torch.Tensor, codes: torch.Tensor | None) -> torch.Tensor:
    """Rendered pairs ``(B,2,3,h,w)`` plus the output-bias sidecar's offsets for those pairs
    (codes ``(B,2,3)`` x ``output_bias.STEP``); ``codes=None`` returns ``frames`` itself."""
    if codes is None:
        return frames
    _check_frames(frames)
    if tuple(codes.shape) != tuple(frames.shape[:3]):
        raise InputError(f"output-bias codes must be {tuple(frames.shape[:3])} for these pairs, "
                         f"got {tuple(codes.shape)}")
    return frames + (codes.to(frames.dtype) * output_bias.STEP)[..., None, None]


def upsampled_pose_field(codes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Pose-field codes ``(B, 3, 3, 4)`` as grey levels ``(B, 3, h, w)`` at the renderer's size:
    ``codes x pose_field.STEP``, bilinear with half-pixel centres and clamped edges."""
    field = codes.float() * pose_field.STEP
    return F.interpolate(field, size=tuple(size), mode="bilinear", align_corners=False)


def add_pose_field(frames: torch.Tensor, codes: torch.Tensor | None) -> torch.Tensor:
    """Rendered pairs ``(B,2,3,h,w)`` with the pose-field sidecar added to their first frames
    (codes ``(B,3,3,4)``); ``codes=None`` returns ``frames`` itself."""
    if codes is None:
        return frames
    _check_frames(frames)
    if tuple(codes.shape) != pose_field.shape(len(frames)):
        raise InputError(f"pose-field codes must be {pose_field.shape(len(frames))} for these pairs, "
                         f"got {tuple(codes.shape)}")
    field = upsampled_pose_field(codes, frames.shape[-2:]).to(frames.dtype)
    return torch.stack([frames[:, 0] + field, frames[:, 1]], dim=1)


def rows(codes: torch.Tensor | None, batch: slice, device) -> torch.Tensor | None:
    """A sidecar's codes for one render batch of pairs, on ``device`` (None stays None)."""
    return None if codes is None else codes[batch].to(device)


def add_sidecars(frames: torch.Tensor, bias: torch.Tensor | None, field: torch.Tensor | None) -> torch.Tensor:
    """Rendered pairs with an archive's sidecars applied: the output bias, then the pose field."""
    return add_pose_field(add_output_bias(frames, bias), field)


def camera_frames(frames: torch.Tensor, size: tuple[int, int] = contract.CAMERA_HW) -> torch.Tensor:
    """Rendered pairs ``(B,2,3,h,w)`` -> ``(B,2,3,H,W)`` at ``size`` (H, W): bicubic, clamped,
    rounded with a straight-through gradient. Values are integers 0..255 in float32."""
    _check_frames(frames)
    b, t = frames.shape[:2]
    x = frames.float().flatten(0, 1)
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=tuple(size), mode="bicubic", align_corners=False)
    x = round_ste(torch.clamp(x, 0.0, 255.0))
    return x.view(b, t, 3, *x.shape[-2:])


def camera_pairs_uint8(frames: torch.Tensor, size: tuple[int, int] = contract.CAMERA_HW) -> torch.Tensor:
    """The uint8 pairs ``(B,2,H,W,3)`` an inflate writes for rendered pairs (no gradient): the values
    of ``camera_frames``, computed in place (clamp, round) and cast straight into the channels-last
    uint8 buffer, which saves two full-size float copies per batch."""
    _check_frames(frames)
    b, t = frames.shape[:2]
    with torch.no_grad():
        x = frames.float().flatten(0, 1)
        if tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x, size=tuple(size), mode="bicubic", align_corners=False)
        else:
            x = x.clone()
        x.clamp_(0.0, 255.0).round_()
        out = torch.empty((b, t, *x.shape[-2:], 3), dtype=torch.uint8, device=x.device)
        out.copy_(x.view(b, t, 3, *x.shape[-2:]).permute(0, 1, 3, 4, 2))
        return out
