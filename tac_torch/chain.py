"""The differentiable contest chain: rendered pairs to scorer outputs, with gradients to the renderer.

    pairs (B,2,3,h,w) float 0..255 (renderer output)
      --bicubic up--> (B,2,3,874,1164) --clamp 0..255--> --round (straight-through)-->
      the exact values of the uint8 frames an inflate writes
      --channels-last, as the evaluator lays them out-->
        PoseNet: posenet_input_differentiable --> (B,12,192,256) --> pose (B,12)
        SegNet:  segnet_input_differentiable  --> (B,3,384,512)  --> logits (B,5,384,512)

Rounding is exact (half to even, as a uint8 cast of rounded values is), so
the forward pass sees what the evaluator sees; only the gradient is
approximate. Targets (the scorers' outputs on the original pairs) come from
the evaluator's own exact path and are cached by content.

The linear camera path (``ContestChain(..., path="linear")``) is a cheaper twin for
training: the bicubic up and the scorers' bilinear down, both linear and separable, are
one precomputed matrix per axis, without the uint8 clamp and rounding between them:

    pairs (B,2,3,h,w) --A_h . x . A_w^T--> (B,2,3,384,512) --> PoseNet (yuv6), SegNet
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tac_core import contract
from tac_core.errors import InputError
from tac_core.files import atomic_output
from tac_torch import preprocess
from tac_torch.frames import camera_frames, camera_pairs_uint8, round_ste  # noqa: F401  (re-exported)
from tac_torch.scorers import TorchScorers, channels_last_copy

CACHE_ENV = "TAC_CACHE_DIR"
TARGETS_VERSION = 1            # bump when the targets' meaning changes: old cache files are ignored
PATHS = ("exact", "linear")    # how the chain takes rendered pairs to the scorers' input size


def evaluator_layout(frames: torch.Tensor) -> torch.Tensor:
    """Float pairs ``(B,2,3,H,W)`` with the evaluator's memory layout (a channels-last view of a
    ``(B,2,H,W,3)`` buffer), so the preprocessing rounds exactly as it does on uint8 frames."""
    return frames.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)


@dataclass
class ChainOutput:
    """What the scorers make of a batch of rendered pairs."""

    pose: torch.Tensor            # (B, 12) PoseNet ``pose`` outputs
    seg_logits: torch.Tensor      # (B, 5, 384, 512) SegNet logits on the second frame
    frames: torch.Tensor | None   # (B, 2, 3, H, W) the rounded camera frames (float, integer values);
                                  # None on the linear path, which makes none

    def pairs_uint8(self) -> torch.Tensor:
        """The frames as the evaluator reads them: ``(B, 2, H, W, 3)`` uint8 (exact path only)."""
        if self.frames is None:
            raise InputError("the linear camera path makes no camera frames; use path='exact'")
        return self.frames.detach().to(torch.uint8).permute(0, 1, 3, 4, 2).contiguous()


@lru_cache(maxsize=8)
def round_trip_matrix(rendered: int, camera: int, model: int) -> torch.Tensor:
    """``(model, rendered)`` float32: one axis of the camera round trip, bicubic (align_corners=False)
    from ``rendered`` to ``camera`` samples, then bilinear to ``model`` samples, as a matrix (each
    row sums to 1). Built by resampling the identity in float64 with the very calls the exact path
    makes; a size equal to the next is left alone, as the exact path leaves it."""
    x = torch.eye(rendered, dtype=torch.float64).reshape(rendered, 1, rendered, 1)
    if camera != rendered:
        x = F.interpolate(x, size=(camera, 1), mode="bicubic", align_corners=False)
    x = F.interpolate(x, size=(model, 1), mode="bilinear", align_corners=False)
    return x.reshape(rendered, model).T.float().contiguous()


def linear_round_trip(frames: torch.Tensor, camera: tuple[int, int] = contract.CAMERA_HW) -> torch.Tensor:
    """Rendered frames ``(..., h, w)`` (pairs ``(B,2,3,h,w)``, say) at the scorers' input size
    ``(..., 384, 512)`` by the linear path: the camera round trip without its clamp and rounding
    (differentiable)."""
    h, w = frames.shape[-2:]
    a_h = round_trip_matrix(h, camera[0], contract.MODEL_INPUT_HW[0]).to(frames.device)
    a_w = round_trip_matrix(w, camera[1], contract.MODEL_INPUT_HW[1]).to(frames.device)
    return a_h @ frames.float() @ a_w.T


class ContestChain:
    """Rendered pairs -> scorer outputs, differentiable with respect to the pairs only.

    The scorers' parameters are frozen (``requires_grad`` off) when the chain
    is built; they stay in eval mode. ``size`` is the camera size (H, W) the
    pairs are upsampled to; a smaller one makes a cheaper, inexact chain for tests. ``path``
    is ``"exact"`` (the evaluator's values) or ``"linear"`` (``linear_round_trip``: no clamp or
    rounding at camera size; the chain's part of a CPU training step takes about half as long).
    """

    def __init__(self, scorers: TorchScorers, size: tuple[int, int] = contract.CAMERA_HW, path: str = "exact"):
        if len(size) != 2 or min(size) < 2:
            raise InputError(f"camera size must be (H, W) with both >= 2, got {size!r}")
        if path not in PATHS:
            raise InputError(f"camera path must be one of {', '.join(PATHS)}, got {path!r}")
        self.scorers, self.size, self.path = scorers, tuple(int(v) for v in size), path
        for net in (scorers.segnet, scorers.posenet):
            net.eval()
            for p in net.parameters():
                p.requires_grad_(False)
        if path == "linear":      # not exact anyway: channels-last copies of the scorers are faster on a CPU
            self._segnet, self._posenet = channels_last_copy(scorers.segnet), channels_last_copy(scorers.posenet)

    def __call__(self, frames: torch.Tensor) -> ChainOutput:
        return self.forward(frames)

    def forward(self, frames: torch.Tensor) -> ChainOutput:
        """Scorer outputs for rendered pairs ``(B,2,3,h,w)`` float 0..255."""
        if self.path == "linear":
            x = linear_round_trip(frames, self.size)
            planes = preprocess.posenet_planes_differentiable(x).contiguous(memory_format=torch.channels_last)
            logits = self._segnet(x[:, -1].contiguous(memory_format=torch.channels_last))
            return ChainOutput(pose=self._posenet(planes)["pose"], seg_logits=logits.contiguous(), frames=None)
        cam = camera_frames(frames, self.size)
        x = evaluator_layout(cam)
        pose = self.scorers.posenet(preprocess.posenet_input_differentiable(x))["pose"]
        logits = self.scorers.segnet(preprocess.segnet_input_differentiable(x))
        return ChainOutput(pose=pose, seg_logits=logits, frames=cam)


# --- targets ------------------------------------------------------------------

@dataclass
class Targets:
    """Scorer outputs on the original pairs: the training targets."""

    seg: np.ndarray               # (P, 384, 512) uint8 SegNet argmax of each pair's second frame
    pose: np.ndarray              # (P, 12) float32 PoseNet outputs of each pair

    def __len__(self) -> int:
        return len(self.pose)

    def batch(self, index, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """(seg int64, pose float32) tensors of the pairs at ``index`` (a slice or index array)."""
        return (torch.as_tensor(np.ascontiguousarray(self.seg[index]), device=device).long(),
                torch.as_tensor(np.ascontiguousarray(self.pose[index]), device=device))

    def to(self, device: str | torch.device) -> "TargetTensors":
        """Every pair's targets as tensors on ``device``, copied once, for training steps that
        take their batches there (a copy from the host each step would make a GPU wait)."""
        return TargetTensors(torch.from_numpy(np.array(self.seg, dtype=np.uint8)).to(device),
                             torch.from_numpy(np.array(self.pose, dtype=np.float32)).to(device))


@dataclass
class TargetTensors:
    """``Targets`` held as tensors on one device."""

    seg: torch.Tensor             # (P, 384, 512) uint8
    pose: torch.Tensor            # (P, 12) float32

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(seg int64, pose float32) of the pairs at ``index`` (an index tensor on any device)."""
        index = to_device(index, self.seg.device)
        return self.seg[index].long(), self.pose[index]


def to_device(t: torch.Tensor, device: str | torch.device) -> torch.Tensor:
    """``t`` on ``device``; a CPU tensor goes to a GPU through pinned memory without waiting."""
    device = torch.device(device)
    if device.type != "cuda" or t.device.type != "cpu":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def as_pairs(frames: np.ndarray) -> np.ndarray:
    """uint8 frames ``(N,H,W,3)`` or pairs ``(P,2,H,W,3)`` as the contest's pairs, without copying.

    An odd N leaves its last frame out, as the contest's sampling does.
    """
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8:
        raise InputError("frames must be a uint8 numpy array (N, H, W, 3) or (P, 2, H, W, 3)")
    if frames.ndim == 4 and frames.shape[-1] == 3:
        if frames.shape[0] < contract.SEQ_LEN:
            raise InputError(f"a video needs at least {contract.SEQ_LEN} frames (one pair), "
                             f"got {frames.shape[0]}")
        usable = frames.shape[0] - frames.shape[0] % contract.SEQ_LEN
        return frames[:usable].reshape(-1, contract.SEQ_LEN, *frames.shape[1:])
    if frames.ndim == 5 and frames.shape[1] == contract.SEQ_LEN and frames.shape[-1] == 3 and len(frames):
        return frames
    raise InputError(f"frames must be (N, H, W, 3) or (P, 2, H, W, 3), got {frames.shape}")


def targets_key(pairs: np.ndarray, scorers: TorchScorers) -> str:
    """sha256 of the frames' bytes and shape, the scorers' weights and the device type."""
    h = hashlib.sha256(f"tac-targets-v{TARGETS_VERSION}|{pairs.shape}|".encode())
    for name in sorted(scorers.weights_sha256):
        h.update(f"{name}={scorers.weights_sha256[name]}|".encode())
    h.update(f"{torch.device(scorers.device).type}|".encode())
    flat = pairs.reshape(len(pairs), -1)
    for i in range(len(flat)):                   # one pair at a time: a memory-mapped video stays on disk
        h.update(memoryview(np.ascontiguousarray(flat[i])))
    return h.hexdigest()


def default_targets_dir() -> Path:
    """``$TAC_CACHE_DIR/targets``, else ``~/.cache/tac/targets``."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "tac")) / "targets"


def _load(path: Path, n: int) -> Targets | None:
    try:
        with np.load(path) as z:
            seg, pose = z["seg"], z["pose"]
    except (OSError, ValueError, KeyError):
        return None                              # unreadable or partial: recompute
    if len(seg) != n or len(pose) != n or seg.dtype != np.uint8 or pose.dtype != np.float32:
        return None
    return Targets(seg=seg, pose=pose)


def pair_targets(frames: np.ndarray, scorers: TorchScorers, *, batch_size: int = contract.BATCH_SIZE,
                 cache_dir: Path | None = None, use_cache: bool = True) -> Targets:
    """Targets for a video's pairs from its uint8 frames, by the evaluator's exact path
    (``TorchScorers.outputs``), cached as ``<cache_dir>/<targets_key>.npz``."""
    pairs = as_pairs(frames)
    if batch_size < 1:
        raise InputError(f"batch size must be positive, got {batch_size}")
    path = None
    if use_cache:
        folder = Path(cache_dir) if cache_dir is not None else default_targets_dir()
        path = folder / f"{targets_key(pairs, scorers)}.npz"
        if path.exists():
            cached = _load(path, len(pairs))
            if cached is not None:
                return cached
    out = scorers.outputs_batched(pairs, batch_size)
    targets = Targets(seg=out["seg"], pose=out["pose"].astype(np.float32))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, seg=targets.seg, pose=targets.pose)
        with atomic_output(path) as f:
            f.write(buf.getvalue())
    return targets
