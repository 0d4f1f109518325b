"""Steering a ``mask_warp`` archive's class maps: the renderer's input need not be SegNet's target.

The archive stores, per pair, the class map the renderer paints the second frame from; the
score compares SegNet on that frame with SegNet on the original. Almost every pixel SegNet
then gets wrong sits on a class boundary, where the painted edge lands a pixel off. Moving
the input map's boundary by a pixel there moves the painted edge, so each round:

    maps --renderer's second frame, linear camera path, SegNet--> margin loss, per-pixel errors
      --d loss / d one-hot--> each boundary pixel's cheapest class that 2 of its 4 neighbours hold
      --the ``flips`` most negative per map--> candidate maps --> their per-pixel errors
      --keep a flip where the errors in the (2r+1)^2 window around it fell--> maps

Only second frames are rendered (SegNet sees nothing else), on the chain's linear path; the
caller measures the result exactly, with its bytes, and keeps it only if the score falls.

The margin loss asks every pixel for a lead of 2 logits by default. Most errors left after
steering sit where the original's own SegNet lead is under 0.5 (``benchmarks/seg_errors.py``):
jagged boundaries whose lead of 2 no painted edge can reach. ``margins`` asks each pixel for
its own (``margins_from_leads``: the original's lead, between a floor and 2), so the gradient
goes to the flips that can be won.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from tac_core import contract
from tac_core.errors import InputError
from tac_core.progress import progress
from tac_torch.chain import linear_round_trip
from tac_torch.losses import LossWeights, seg_margin_loss
from tac_torch.mask_warp import MaskWarp
from tac_torch.scorers import TorchScorers, channels_last_copy, seg_classes

MIN_VOTES = 2                   # neighbours (of 4) that must hold the class a pixel may flip to


@dataclass(frozen=True)
class SteerResult:
    """What the rounds did, on the linear path: seg disagreement before and after, pixels moved."""

    rounds: int
    flipped: int                    # pixels of the maps that differ from the given ones
    errors_before: float            # fraction of SegNet pixels that disagree with the targets
    errors_after: float


def window_sum(a: np.ndarray, r: int) -> np.ndarray:
    """Per pixel of ``a`` (..., H, W), the sum over the (2r+1) x (2r+1) window around it (zero outside),
    as float64."""
    if r < 0:
        raise InputError(f"window radius must be >= 0, got {r}")
    c = np.pad(a.astype(np.float64), [(0, 0)] * (a.ndim - 2) + [(r + 1, r), (r + 1, r)]).cumsum(-2).cumsum(-1)
    k = 2 * r + 1
    return c[..., k:, k:] - c[..., :-k, k:] - c[..., k:, :-k] + c[..., :-k, :-k]


def cheapest_flips(maps: np.ndarray, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel of ``maps`` (B, H, W): the first-order loss change of its cheapest flip, and that
    class (``grad`` (B, K, H, W) is d loss / d one-hot). A pixel may only take a class at least
    ``MIN_VOTES`` of its 4 neighbours hold: a flip fills a notch of a boundary rather than growing a
    spike out of a straight one, which the class-map coder would pay for. Elsewhere: +inf and the
    pixel's own class."""
    own = maps.astype(np.int64)
    now = np.take_along_axis(grad, own[:, None], 1)[:, 0]
    pad = np.pad(maps, ((0, 0), (1, 1), (1, 1)), mode="edge")
    near = (pad[:, :-2, 1:-1], pad[:, 2:, 1:-1], pad[:, 1:-1, :-2], pad[:, 1:-1, 2:])
    cost = np.full(maps.shape, np.inf, np.float32)
    cls = maps.copy()
    for candidate in near:
        votes = sum((other == candidate).astype(np.int8) for other in near)
        c = np.take_along_axis(grad, candidate[:, None].astype(np.int64), 1)[:, 0] - now
        c = np.where((candidate != maps) & (votes >= MIN_VOTES), c, np.inf)
        better = c < cost
        cost, cls = np.where(better, c, cost), np.where(better, candidate, cls)
    return cost, cls


def _at(errors: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Per-pixel errors (B, 384, 512) as error counts per class-map pixel (B, h, w): the errors
    themselves at the same size, else their area average times the area each map pixel covers."""
    if tuple(errors.shape[1:]) == tuple(hw):
        return errors
    area = errors.shape[1] * errors.shape[2] / (hw[0] * hw[1])
    pooled = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(errors).double()[:, None], hw)
    return pooled[:, 0].numpy() * area


class _Seg:
    """SegNet on the renderer's second frames, by the linear camera path."""

    def __init__(self, net: MaskWarp, scorers: TorchScorers, camera: tuple[int, int], device):
        self.net, self.camera, self.device = net, camera, device
        self.segnet = channels_last_copy(scorers.segnet)    # frozen; the linear path is not exact anyway

    def logits(self, onehot: torch.Tensor) -> torch.Tensor:
        frames = linear_round_trip(self.net.second_frame(onehot), self.camera)
        return self.segnet(frames.contiguous(memory_format=torch.channels_last))

    def grad_and_errors(self, maps: np.ndarray, target: torch.Tensor,
                        margin: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
        onehot = self.net.onehot(torch.from_numpy(maps).to(self.device)).requires_grad_(True)
        logits = self.logits(onehot)
        seg_margin_loss(logits, target, LossWeights(), margin).backward()
        return onehot.grad.cpu().numpy(), (seg_classes(logits.detach()) != target).cpu().numpy()

    @torch.no_grad()
    def errors(self, maps: np.ndarray, target: torch.Tensor) -> np.ndarray:
        onehot = self.net.onehot(torch.from_numpy(maps).to(self.device))
        return (seg_classes(self.logits(onehot)) != target).cpu().numpy()


def margins_from_leads(leads: np.ndarray, floor: float, margin: float = LossWeights().margin) -> np.ndarray:
    """Per-pixel margins for the steering loss: the original's SegNet lead of its best class over
    the runner-up (``TorchScorers.seg_leads``), clipped to ``floor``..``margin``, float32."""
    if not 0 < floor <= margin:
        raise InputError(f"the margin floor must be in (0, {margin:g}], got {floor!r}")
    return np.clip(np.asarray(leads, dtype=np.float32), floor, margin)


def steer_maps(net: MaskWarp, maps: np.ndarray, seg_targets: np.ndarray, scorers: TorchScorers, *, rounds: int,
               flips: int, window: int = 2, margins: np.ndarray | None = None,
               camera: Sequence[int] = contract.CAMERA_HW, device: str = "cpu", batch: int = 4,
               show_progress: bool = True) -> tuple[np.ndarray, SteerResult]:
    """Class maps ``(P, h, w)`` uint8 steered for ``rounds`` rounds of at most ``flips`` flips per
    map (module docstring); ``seg_targets`` are SegNet's classes on the originals ``(P', 384, 512)``,
    P' = P or P - 1 (an odd clip's last map is scored by no pair and left alone). ``margins``
    (shaped like ``seg_targets``, positive): each pixel's margin in the loss (default: 2 for all)."""
    maps = np.asarray(maps)
    if maps.ndim != 3 or maps.dtype != np.uint8:
        raise InputError(f"class maps must be uint8 (P, H, W), got {maps.dtype} {maps.shape}")
    if len(seg_targets) not in (len(maps), len(maps) - 1):
        raise InputError(f"{len(seg_targets)} seg targets for {len(maps)} class maps")
    if margins is not None and (np.shape(margins) != np.shape(seg_targets) or not np.all(np.asarray(margins) > 0)):
        raise InputError(f"steering margins must be positive and shaped like the seg targets "
                         f"{np.shape(seg_targets)}, got {np.shape(margins)}")
    if rounds < 0 or flips < 1 or window < 0:
        raise InputError(f"steering needs rounds >= 0, flips >= 1 and window >= 0, got {rounds}, {flips}, {window}")
    net = net.to(device).eval()
    trainable = [p for p in net.parameters() if p.requires_grad]
    for p in trainable:                  # gradients go to the one-hot maps only
        p.requires_grad_(False)
    try:
        return _steer(_Seg(net, scorers, tuple(camera), device), maps, seg_targets, margins, rounds, flips, window,
                      batch, device, show_progress)
    finally:
        for p in trainable:
            p.requires_grad_(True)


def _steer(seg: _Seg, maps: np.ndarray, seg_targets: np.ndarray, margins: np.ndarray | None, rounds: int,
           flips: int, window: int, batch: int, device, show_progress: bool) -> tuple[np.ndarray, SteerResult]:
    out = maps.copy()
    n = len(seg_targets)
    before = after = 0
    bar = progress(total=n * rounds, desc="steer maps", unit="map", disable=not show_progress or rounds == 0)
    for start in range(0, n if rounds else 0, batch):
        rows = slice(start, min(n, start + batch))
        target = torch.as_tensor(np.ascontiguousarray(seg_targets[rows]), device=device).long()
        margin = None if margins is None else torch.as_tensor(np.asarray(margins[rows], np.float32), device=device)
        current = out[rows].copy()
        for r in range(rounds):
            grad, errors = seg.grad_and_errors(current, target, margin)
            before += int(errors.sum()) if r == 0 else 0
            cost, cls = cheapest_flips(current, grad)
            candidate = current.copy()
            for j in range(len(current)):
                flat = cost[j].reshape(-1)
                pick = np.argpartition(flat, min(flips, flat.size - 1))[:flips]
                pick = pick[flat[pick] < 0]
                candidate[j].reshape(-1)[pick] = cls[j].reshape(-1)[pick]
            gain = (window_sum(_at(errors, current.shape[1:]), window)
                    - window_sum(_at(seg.errors(candidate, target), current.shape[1:]), window))
            current = np.where((candidate != current) & (gain > 1e-9), candidate, current)
            bar.update(len(current))
        out[rows] = current
        after += int(seg.errors(current, target).sum())
    bar.close()
    pixels = max(1, n * seg_targets.shape[1] * seg_targets.shape[2])
    return out, SteerResult(rounds, int((out != maps).sum()), before / pixels, after / pixels)
