"""Fitting the pose-field sidecar (``tac_core.architectures.pose_field``) through the frozen PoseNet.

    rendered pairs (what the archive renders without the field)
      --the exact inflate and PoseNet preprocessing--> PoseNet input X0 (B, 12, 192, 256)
    codes c (B, 3, 3, 4) --response map R (unit codes through the field's upsampling, bicubic to
      the camera, bilinear to 384x512 and yuv6, all linear)--> X0[:, :6] + R c
      --PoseNet--> pose; Adam on the squared error to the targets, ``iterations`` steps
    --integer codes: each the floor or the ceiling of its fitted value, chosen through PoseNet's
      Jacobian there (``round_codes``), and plain rounding as the fallback--> the exact inflate and
      PoseNet again: each pair keeps whichever of the two lowers its exact pose error most, or none
    --each further pass: X0 taken again by the exact path with the codes kept so far, a correction
      fitted and rounded the same way around them--> kept per pair where the exact error falls
    --a pair still above ``retry_above``: all the passes again from no field, the first at
      ``retry_lr``--> the better of its two fits
    --a pair still above it: ``extra_passes`` more further passes around its codes

The field is smooth and a few grey levels high, so the camera chain's clamp and rounding barely
see it and the linear model is close (the exact check has the last word). Close, not equal:
PoseNet is not linear, and rounding 36 codes moves the field. A second pass, linearised where
the first one ended, took the demo's pose MSE from 0.00033 to 0.00012 (first pass at rate 2).
Only PoseNet runs in the loop, on its small input: a few seconds per pair where the full chain
would take minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from tac_core import contract
from tac_core.architectures import pose_field
from tac_core.errors import InputError
from tac_core.progress import progress
from tac_torch import preprocess
from tac_torch.chain import Targets, linear_round_trip
from tac_torch.frames import add_pose_field, camera_pairs_uint8, upsampled_pose_field
from tac_torch.scorers import TorchScorers, channels_last_copy

PLANES = 6                      # PoseNet's input planes per frame (yuv6); the first frame's come first


@dataclass(frozen=True)
class FieldSettings:
    """Whether to fit, and how hard: Adam steps per batch of pairs, its rate (codes), pairs per batch,
    the linear-model pose MSE at which a pair stops early (0: never), and the passes: each after the
    first refits around the codes kept so far, linearised there, with its own steps and rate;
    ``beta2`` is Adam's second-moment decay in every pass. A pair whose exact MSE after the passes
    is still above ``retry_above`` (0: never) is fitted again from no field, its first pass at rate
    ``retry_lr``, and keeps the better of the two fits: a fast first pass can throw a pair's codes to
    the ends of their range and leave it stuck there. A pair still above it after that has
    ``extra_passes`` more refit passes around its codes: far from its target, PoseNet's linear model
    holds only near where it was taken, and each pass takes it again."""

    enabled: bool = True
    iterations: int = 60
    lr: float = 1.0
    batch_pairs: int = 25
    converged: float = 0.0          # a pair whose linear-model pose MSE falls below this stops early
    passes: int = 1
    refit_iterations: int = 100
    refit_lr: float = 0.5           # smaller than a first pass's: Adam's first steps move every code by ~lr
    beta2: float = 0.999            # Adam's second-moment decay (torch's default)
    retry_above: float = 0.0        # pairs still above this exact MSE are fitted again at retry_lr
    retry_lr: float = 1.0
    extra_passes: int = 0           # then, pairs still above retry_above: this many more refit passes

    def __post_init__(self):
        def number(v, kind):
            return isinstance(v, kind) and not isinstance(v, bool)

        if not isinstance(self.enabled, bool):
            raise InputError(f"[pose_field] enabled must be true or false, got {self.enabled!r}")
        if not number(self.iterations, int) or self.iterations < 0:
            raise InputError(f"[pose_field] iterations must be an integer >= 0, got {self.iterations!r}")
        if not number(self.lr, (int, float)) or not 0 < self.lr < float("inf"):
            raise InputError(f"[pose_field] lr must be a number > 0, got {self.lr!r}")
        if not number(self.batch_pairs, int) or self.batch_pairs < 1:
            raise InputError(f"[pose_field] batch_pairs must be an integer >= 1, got {self.batch_pairs!r}")
        if not number(self.converged, (int, float)) or not 0 <= self.converged < float("inf"):
            raise InputError(f"[pose_field] converged must be a number >= 0, got {self.converged!r}")
        if not number(self.passes, int) or self.passes < 1:
            raise InputError(f"[pose_field] passes must be an integer >= 1, got {self.passes!r}")
        if not number(self.refit_iterations, int) or self.refit_iterations < 0:
            raise InputError(f"[pose_field] refit_iterations must be an integer >= 0, got {self.refit_iterations!r}")
        if not number(self.refit_lr, (int, float)) or not 0 < self.refit_lr < float("inf"):
            raise InputError(f"[pose_field] refit_lr must be a number > 0, got {self.refit_lr!r}")
        if not number(self.beta2, (int, float)) or not 0 <= self.beta2 < 1:
            raise InputError(f"[pose_field] beta2 must be a number in [0, 1), got {self.beta2!r}")
        if not number(self.retry_above, (int, float)) or not 0 <= self.retry_above < float("inf"):
            raise InputError(f"[pose_field] retry_above must be a number >= 0, got {self.retry_above!r}")
        if not number(self.retry_lr, (int, float)) or not 0 < self.retry_lr < float("inf"):
            raise InputError(f"[pose_field] retry_lr must be a number > 0, got {self.retry_lr!r}")
        if not number(self.extra_passes, int) or self.extra_passes < 0:
            raise InputError(f"[pose_field] extra_passes must be an integer >= 0, got {self.extra_passes!r}")


@dataclass
class FieldFit:
    """The fitted codes and each pair's exact PoseNet error without and with them."""

    codes: torch.Tensor             # (P, 3, 3, 4) int8; a pair whose field did not help is all zero
    before: np.ndarray              # (P,) float64 exact pose MSE without the field
    after: np.ndarray               # (P,) float64 with the kept codes

    @property
    def changed_pairs(self) -> int:
        return int(self.codes.flatten(1).any(1).sum())


def response_map(render_hw: tuple[int, int], camera: tuple[int, int] = contract.CAMERA_HW,
                 device: str | torch.device = "cpu") -> torch.Tensor:
    """How PoseNet's first-frame input planes move per unit code: ``(K, 6, 192, 256)``, K = 3 x 3 x 4
    (channel-major, as the codes flatten). Linear: the clamps and the rounding are left out."""
    k = pose_field.CHANNELS * pose_field.GRID[0] * pose_field.GRID[1]
    unit = torch.eye(k, device=device).view(k, pose_field.CHANNELS, *pose_field.GRID)
    return preprocess.yuv6_linear(linear_round_trip(upsampled_pose_field(unit, render_hw), camera))


def _exact_pose(scorers: TorchScorers, pairs_uint8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """PoseNet's input and ``pose`` outputs on uint8 pairs, by the evaluator's exact path."""
    with torch.inference_mode():
        x = preprocess.posenet_input(preprocess.frames_float(pairs_uint8))
        return x, scorers.posenet(x)["pose"][:, :contract.POSE_SCORED]


def _mse(pose: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    return ((pose.float() - target) ** 2).mean(1).double().cpu().numpy()


ROUNDING_MOVES = 200            # at most this many single-code moves per batch in round_codes


def round_codes(field: torch.Tensor, pose_of: Callable[[torch.Tensor], torch.Tensor],
                target: torch.Tensor) -> torch.Tensor:
    """Integer codes near the fitted ``field`` ``(B, K)``: each code the floor or the ceiling of its
    value, chosen so that PoseNet's error stays small.

    Rounding every code to the nearest integer moves the field by up to half a grey level per
    code, and PoseNet is sensitive enough to such smooth colour changes that this multiplied the
    pose error of a converged fit several times over. But 6 pose outputs depend on K = 36 codes:
    most rounding errors can cancel. With the Jacobian ``J`` of the pose at ``field`` (6 backward
    passes) the error of codes ``c`` is about ``e + J (c - field)``; starting from the nearest
    integers, a greedy search moves one code at a time (per pair, the move that shrinks that
    error most) while every code stays within one of its fitted value."""
    field = field.detach()
    at = field.clone().requires_grad_(True)
    pose = pose_of(at)
    jac = torch.stack([torch.autograd.grad(pose[:, k].sum(), at, retain_graph=k + 1 < pose.shape[1])[0]
                       for k in range(pose.shape[1])], 1)                      # (B, outputs, K)
    lo, hi = pose_field.CODE_RANGE
    codes = torch.round(field).clamp(lo, hi)
    err = (pose.detach() - target) + torch.einsum("bok,bk->bo", jac, codes - field)
    signs = torch.tensor([1.0, -1.0], device=field.device)
    rows = torch.arange(len(field), device=field.device)
    for _ in range(ROUNDING_MOVES):
        moved = codes[:, :, None] + signs                                      # (B, K, 2)
        allowed = (moved >= lo) & (moved <= hi) & ((moved - field[:, :, None]).abs() < 1)
        new = err[:, :, None, None] + jac[:, :, :, None] * signs              # (B, outputs, K, 2)
        loss = torch.where(allowed, (new ** 2).sum(1), torch.inf).flatten(1)
        best = loss.min(1)
        better = best.values < (err ** 2).sum(1)
        if not bool(better.any()):
            break
        k, sign = best.indices // 2, signs[best.indices % 2]
        step = torch.where(better, sign, torch.zeros_like(sign))
        codes[rows, k] += step
        err = err + step[:, None] * jac[rows, :, k]
    return codes


def fit_pose_field(render: Callable[[slice], torch.Tensor], targets: Targets, scorers: TorchScorers,
                   settings: FieldSettings = FieldSettings(), *, camera: tuple[int, int] = contract.CAMERA_HW,
                   device: str | torch.device = "cpu", show_progress: bool = True) -> FieldFit:
    """Pose-field codes for ``len(targets)`` pairs; ``render(batch)`` gives the float pairs
    ``(B, 2, 3, h, w)`` of the pairs in slice ``batch`` as the archive renders them without the field."""
    n = len(targets)
    posenet = channels_last_copy(scorers.posenet)          # for the Adam steps; the exact checks use the original
    codes = torch.zeros(pose_field.shape(n), dtype=torch.int8)
    before, after = np.zeros(n), np.zeros(n)
    response = None
    bar = progress(total=n * settings.passes, desc="pose field", unit="pair", disable=not show_progress)
    for start in range(0, n, settings.batch_pairs):
        batch = slice(start, min(n, start + settings.batch_pairs))
        with torch.no_grad():
            rendered = render(batch).to(device)
        if response is None:   # channels last (K, 192, 256, 6), as PoseNet's input is laid out below
            response = response_map(tuple(rendered.shape[-2:]), camera, device).permute(0, 2, 3, 1).flatten(1)
        target = torch.as_tensor(targets.pose[batch, :contract.POSE_SCORED], device=device).float()
        x0, pose0 = _exact_pose(scorers, camera_pairs_uint8(rendered, camera))
        before[batch] = _mse(pose0, target)
        fit = _Passes(scorers, posenet, response, settings, camera)
        kept, after[batch] = fit(rendered, target, x0, before[batch], settings.lr)
        bar.update(len(target) * settings.passes)
        stuck = np.flatnonzero(after[batch] > settings.retry_above) if settings.retry_above else []
        if len(stuck):
            rows = torch.from_numpy(stuck).to(device)
            again, err = fit(rendered[rows], target[rows], x0[rows], before[batch][stuck], settings.retry_lr)
            better = err < after[batch][stuck]
            use = torch.from_numpy(better).to(device)
            kept[rows[use]] = again[use]
            after[start + stuck[better]] = err[better]
        stuck = np.flatnonzero(after[batch] > settings.retry_above) if settings.retry_above else []
        if len(stuck) and settings.extra_passes:
            rows = torch.from_numpy(stuck).to(device)
            kept[rows], after[start + stuck] = fit.more(rendered[rows], target[rows], kept[rows],
                                                        after[batch][stuck], settings.extra_passes)
        codes[batch] = kept.to(torch.int8).view(-1, *codes.shape[1:]).cpu()
    bar.close()
    return FieldFit(codes, before, after)


class _Passes:
    """A batch's passes (``FieldSettings``), the first at a given rate, from no field; ``more``
    passes around given codes."""

    def __init__(self, scorers: TorchScorers, posenet, response: torch.Tensor, settings: FieldSettings,
                 camera: tuple[int, int]):
        self.scorers, self.posenet, self.response, self.settings, self.camera = (scorers, posenet, response,
                                                                                  settings, camera)

    def __call__(self, rendered: torch.Tensor, target: torch.Tensor, x0: torch.Tensor, before: np.ndarray,
                 first_lr: float) -> tuple[torch.Tensor, np.ndarray]:
        """Codes ``(B, K)`` float and each pair's exact MSE with them, from PoseNet's exact input
        ``x0`` without the field and the MSE ``before`` it."""
        kept = torch.zeros(len(target), self.response.shape[0], device=x0.device)
        return self._passes(rendered, target, x0.clone(), kept, before.copy(), self.settings.passes, first_lr)

    def more(self, rendered: torch.Tensor, target: torch.Tensor, kept: torch.Tensor, after: np.ndarray,
             passes: int) -> tuple[torch.Tensor, np.ndarray]:
        """``passes`` more refit passes around codes ``kept`` ``(B, K)``, whose exact MSE is ``after``:
        the codes and MSE they end with (no pair's MSE rises)."""
        q = kept.to(torch.int8).view(-1, *pose_field.shape(1)[1:])
        x0, _ = _exact_pose(self.scorers, camera_pairs_uint8(add_pose_field(rendered, q), self.camera))
        # x0 comes from inference mode: the clone is an ordinary tensor the passes can update in place
        return self._passes(rendered, target, x0.clone(), kept.clone(), after.copy(), passes, None)

    def _passes(self, rendered: torch.Tensor, target: torch.Tensor, x0: torch.Tensor, kept: torch.Tensor,
                after: np.ndarray, passes: int, first_lr: float | None) -> tuple[torch.Tensor, np.ndarray]:
        """``passes`` passes from codes ``kept`` (PoseNet's exact input with them ``x0``, their MSE
        ``after``), the first a first pass at ``first_lr`` unless that is None; updates in place."""
        s = self.settings
        for p in range(passes):
            steps, lr = (s.refit_iterations, s.refit_lr) if p or first_lr is None else (s.iterations, first_lr)
            for c in _candidates(self.posenet, self.response, x0, target, kept.clone(), steps, lr, s.converged,
                                 s.beta2):
                q = c.to(torch.int8).view(-1, *pose_field.shape(1)[1:])
                x1, pose1 = _exact_pose(self.scorers, camera_pairs_uint8(add_pose_field(rendered, q), self.camera))
                err = _mse(pose1, target)
                better = torch.from_numpy(err < after).to(x0.device)
                kept[better], x0[better] = c[better], x1[better]
                after = np.minimum(err, after)
        return kept, after


def _candidates(posenet, response: torch.Tensor, x0: torch.Tensor, target: torch.Tensor,
                kept: torch.Tensor, iterations: int, lr: float, converged: float,
                beta2: float) -> list[torch.Tensor]:
    """Integer codes ``(B, K)`` to try instead of ``kept``: ``kept`` plus a change fitted by
    ``iterations`` Adam steps at rate ``lr`` (second-moment decay ``beta2``) on the linear model
    around PoseNet's exact input ``x0`` (B, 12, 192, 256) with ``kept`` applied, rounded plainly
    and, after any steps, by ``round_codes``; clamped to the code range."""
    x0 = x0.permute(0, 2, 3, 1).clone(memory_format=torch.contiguous_format)   # (B, 192, 256, 12)
    field = torch.zeros(len(target), response.shape[0], device=x0.device, requires_grad=True)
    opt = torch.optim.Adam([field], lr=lr, betas=(0.9, beta2))

    def pose_of(f: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        base = x0 if rows is None else x0[rows]
        moved = base[..., :PLANES] + (f @ response).view(len(f), *x0.shape[1:3], PLANES)
        x = torch.cat([moved, base[..., PLANES:]], -1).permute(0, 3, 1, 2)   # channels-last NCHW, no copy
        return posenet(x)["pose"][:, :contract.POSE_SCORED]

    done = torch.zeros(len(target), dtype=torch.bool, device=x0.device)
    for _ in range(iterations):
        active = torch.nonzero(~done)[:, 0]
        if not len(active):
            break
        per_pair = ((pose_of(field[active], active) - target[active]) ** 2).mean(1)
        opt.zero_grad(set_to_none=True)
        per_pair.sum().backward()
        held = field.detach().clone()
        opt.step()
        with torch.no_grad():               # a pair this close stops where it is (Adam would drift it)
            done[active[per_pair.detach() < converged]] = True
            field[done] = held[done]
    lo, hi = pose_field.CODE_RANGE
    candidates = [torch.round(field.detach())]
    if iterations:
        candidates.append(round_codes(field, pose_of, target))
    return [torch.clamp(kept + c, lo, hi) for c in candidates]


@dataclass
class PoseFieldResult:
    """What ``choose_pose_field`` measured and decided."""

    kept: bool
    pose_before: float              # mean exact pose MSE without and with the field (NaN: not run)
    pose_after: float
    score_before: float             # the pose and rate terms of the score (seg does not change)
    score_after: float
    bytes_before: int
    bytes_after: int
    pairs_with_field: int

    @classmethod
    def off(cls, archive_bytes: int) -> "PoseFieldResult":
        """The result of a switched-off step: nothing fitted, nothing measured (NaN)."""
        nan = float("nan")
        return cls(False, nan, nan, nan, nan, archive_bytes, archive_bytes, 0)


def choose_pose_field(render: Callable[[slice], torch.Tensor], targets: Targets, scorers: TorchScorers,
                      settings: FieldSettings, *, archive_bytes: Callable[[torch.Tensor | None], int],
                      original_bytes: float, camera: tuple[int, int] = contract.CAMERA_HW,
                      device: str | torch.device = "cpu", show_progress: bool = True
                      ) -> tuple[torch.Tensor | None, PoseFieldResult]:
    """Fit the field (``fit_pose_field``) and keep it only when the score with the real archive
    bytes (``archive_bytes(codes)``; ``None``: without a field) falls: the codes or None, and the
    measurements. SegNet sees only second frames, so only the pose and rate terms can move;
    ``settings.enabled`` off fits nothing and measures nothing."""
    bytes_before = archive_bytes(None)
    if not settings.enabled:
        return None, PoseFieldResult.off(bytes_before)
    fit = fit_pose_field(render, targets, scorers, settings, camera=camera, device=device,
                         show_progress=show_progress)
    bytes_after = archive_bytes(fit.codes)

    def terms(mse: float, nbytes: int) -> float:
        return contract.score(0.0, mse, nbytes / original_bytes)

    before, after = float(fit.before.mean()), float(fit.after.mean())
    old = terms(before, bytes_before)
    if fit.changed_pairs and terms(after, bytes_after) < old:
        return fit.codes, PoseFieldResult(True, before, after, old, terms(after, bytes_after), bytes_before,
                                          bytes_after, fit.changed_pairs)
    return None, PoseFieldResult(False, before, before, old, old, bytes_before, bytes_before, 0)
