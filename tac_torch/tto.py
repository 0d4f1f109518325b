"""Test-time optimisation (TTO) of an archive's per-pair codes against the frozen scorers.

After QAT the decoder is fixed at its quantised values; what may still move are the codes the
archive stores per pair (``hnerv_pair`` latents, ``mask_warp`` poses, the output-bias sidecar).
They are int8 with a fixed per-dimension scale ``s``, so the optimiser works in code units:

    u (P, D) float, starts at codes / s
    epoch: pairs in a seeded shuffle, batch_pairs at a time; per batch, inner_steps of a fresh Adam:
      q = round(clamp(u, -127, 127)) (straight-through) --x s--> renderer.pairs --> ContestChain
        --> score_loss (seg surrogate + sqrt pose term) --backward--> Adam on that batch's rows of u
    epoch end: the candidate codes, rendered as the archive would (renderer.uint8), scored by the
      evaluator's exact path; pair i keeps its new codes only when its own exact change
        d_i = 100 * d_seg_i / P + f'(m) * d_mse_i / P + rate_per_byte * d_bytes_i
      is negative (f(m) = sqrt(10 m) at the epoch's mean pose MSE m). f is concave, so the sum of
      accepted linearised changes bounds the true change from above: the exact score falls.
    stop: when an epoch's accepted gain is under ``min_gain`` or after ``max_epochs``;
    last: the kept codes are scored once more; if that is not better than the start (it always
      should be), the starting codes are returned unchanged.

Entries at the code limit (|q| = 127) are frozen, so each dimension's largest magnitude, and with
it the archive's scale, stays what it was and every pair's quantised values stay independent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping, Protocol

import numpy as np
import torch

from tac_core import contract
from tac_core.errors import InputError
from tac_core.progress import progress
from tac_torch.chain import ContestChain, Targets
from tac_torch.frames import round_ste
from tac_torch.losses import LossWeights, score_loss
from tac_torch.scorers import TorchScorers

CODE_LIMIT = 127


class CodeRenderer(Protocol):
    """What TTO needs of a renderer: differentiable pairs for some pairs' codes, and the exact
    uint8 frames of all pairs as the archive's inflate would write them."""

    def pairs(self, codes: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Rendered pairs ``(b, 2, 3, h, w)`` float 0..255 for the codes ``(b, D)`` of pairs ``index``."""

    def uint8(self, codes: torch.Tensor) -> Iterator[torch.Tensor]:
        """uint8 pairs ``(b, 2, H, W, 3)`` of every pair, in order, for the codes ``(P, D)``."""


@dataclass(frozen=True)
class TTOSettings:
    """How long and how hard to optimise; validated on construction."""

    max_epochs: int = 4
    min_gain: float = 1e-4          # stop once an epoch gains less (score units)
    lr: float = 1.0                 # Adam step, in code units
    batch_pairs: int = 4
    inner_steps: int = 3            # Adam steps on each batch of pairs per epoch (fresh state per batch)
    seed: int = 0
    rate_per_byte: float = 0.0      # score units per archive byte (25 / original bytes)
    weights: LossWeights = field(default_factory=LossWeights)

    def __post_init__(self):
        if self.max_epochs < 0 or self.batch_pairs < 1 or self.inner_steps < 1:
            raise InputError("TTO needs max_epochs >= 0, batch_pairs >= 1 and inner_steps >= 1")
        if not (self.lr > 0 and self.min_gain >= 0 and self.rate_per_byte >= 0):
            raise InputError("TTO needs lr > 0, min_gain >= 0 and rate_per_byte >= 0")


@dataclass
class PairScores:
    """Exact per-pair distortions: SegNet disagreement fraction and PoseNet MSE."""

    seg: np.ndarray                 # (P,) float64
    mse: np.ndarray                 # (P,) float64

    def score(self, rate: float = 0.0) -> float:
        """The contest score these distortions give at ``rate``."""
        return contract.score(float(self.seg.mean()), float(self.mse.mean()), rate)

    def seg_score(self) -> float:
        """The score's seg term alone (no pose, no rate)."""
        return contract.score_terms(float(self.seg.mean()), 0.0, 0.0)["seg"]


@dataclass
class TTOResult:
    """The codes TTO keeps and what it measured."""

    codes: torch.Tensor             # (P, D) float: kept codes x scale
    before: PairScores | None       # None when no epoch ran (nothing was scored)
    after: PairScores | None
    epochs: int
    changed_pairs: int
    history: list[dict] = field(default_factory=list)

    @property
    def gain(self) -> float:
        """Distortion score before minus after (>= 0; 0 when nothing ran)."""
        return 0.0 if self.before is None else self.before.score() - self.after.score()


def exact_pair_scores(renderer: CodeRenderer, codes: torch.Tensor, targets: Targets,
                      scorers: TorchScorers) -> PairScores:
    """Per-pair distortions of ``codes`` as the archive renders them, by the evaluator's exact path."""
    pose, seg = [], []
    for pairs in renderer.uint8(codes):
        out = scorers.outputs(pairs)
        pose.append(out["pose"])
        seg.append(out["seg"])
    n = len(targets)
    d_pose, d_seg = scorers.distortion({"pose": targets.pose[:n], "seg": targets.seg[:n]},
                                       {"pose": np.concatenate(pose)[:n], "seg": np.concatenate(seg)[:n]})
    return PairScores(seg=d_seg.astype(np.float64), mse=d_pose.astype(np.float64))


def pair_changes(old: PairScores, new: PairScores, extra: np.ndarray | None = None) -> np.ndarray:
    """Each pair's linearised score change if it alone took its new codes (``extra``: added
    score units per pair, e.g. the bytes it costs)."""
    n = len(old.seg)
    m = max(float(old.mse.mean()), 1e-12)
    slope = math.sqrt(contract.POSE_WEIGHT_INSIDE_SQRT) / (2.0 * math.sqrt(m))     # d sqrt(10 m) / dm
    d = (contract.SEG_WEIGHT * (new.seg - old.seg) + slope * (new.mse - old.mse)) / n
    return d if extra is None else d + extra


def code_scale(codes: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``codes`` in code units (``codes / scale``), checked to be on the integer grid."""
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    u = codes.float() / safe
    if not torch.allclose(u, u.round(), atol=1e-3):
        raise InputError("TTO codes must be quantised already (codes / scale integers)")
    return u.round()


def optimise_codes(renderer: CodeRenderer, codes: torch.Tensor, scale: torch.Tensor, targets: Targets,
                   scorers: TorchScorers, settings: TTOSettings = TTOSettings(), *,
                   chain: ContestChain | None = None, device: str = "cpu", name: str = "tto",
                   byte_cost: Callable[[torch.Tensor], np.ndarray] | None = None,
                   show_progress: bool = True) -> TTOResult:
    """Optimise the per-pair ``codes`` (P, D) (on the grid of ``scale``, broadcastable to (P, D))
    against the scorers; never returns codes that score worse than the starting ones. Codes past
    ``len(targets)`` (an odd clip's unscored last pair) are rendered but never changed.

    ``byte_cost(q)`` (optional) gives each pair's estimated archive bytes for integer codes
    ``q`` (P, D); with ``settings.rate_per_byte`` it enters each pair's acceptance.
    """
    P, n = codes.shape[0], len(targets)
    if n > P or n == 0:
        raise InputError(f"{P} pairs of codes but {n} pairs of targets")   # codes past n: unscored, fixed
    scale = scale.to(device).float().expand_as(codes.to(device))
    start_q = code_scale(codes.to(device), scale)
    best_q = start_q.clone()
    frozen = best_q.abs() >= CODE_LIMIT
    u = best_q.clone()
    chain = chain or ContestChain(scorers)
    gen = torch.Generator().manual_seed(settings.seed)

    def cost(q: torch.Tensor) -> np.ndarray:
        if byte_cost is None or settings.rate_per_byte == 0:
            return np.zeros(n)
        return settings.rate_per_byte * np.asarray(byte_cost(q[:n]), dtype=np.float64)

    if settings.max_epochs == 0:            # nothing to try: no scoring pass either
        return TTOResult(codes=(best_q * scale).detach(), before=None, after=None, epochs=0, changed_pairs=0)
    start = exact_pair_scores(renderer, best_q * scale, targets, scorers)
    start_cost = cost(best_q)
    current, current_cost = start, start_cost
    history, epochs = [], 0
    bar = progress(total=settings.max_epochs * n, desc=name, unit="pair", disable=not show_progress)
    try:
        for epoch in range(settings.max_epochs):
            order = torch.randperm(n, generator=gen)
            for i in range(0, n, settings.batch_pairs):
                index = order[i:i + settings.batch_pairs]
                rows = index.to(u.device)
                ub = torch.nn.Parameter(u[rows].clone())
                opt = torch.optim.Adam([ub], lr=settings.lr)
                seg_t, pose_t = targets.batch(index.numpy(), device)
                for _ in range(settings.inner_steps):
                    q = round_ste(ub.clamp(-CODE_LIMIT, CODE_LIMIT))
                    out = chain(renderer.pairs(q * scale[rows], index))
                    loss = score_loss(out.pose, out.seg_logits, pose_t, seg_t, weights=settings.weights)["loss"]
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    ub.grad[frozen[rows]] = 0
                    opt.step()
                with torch.no_grad():
                    u[rows] = torch.where(frozen[rows], best_q[rows], ub.detach())
                bar.update(len(index))
            cand_q = u.clamp(-CODE_LIMIT, CODE_LIMIT).round()
            cand = exact_pair_scores(renderer, cand_q * scale, targets, scorers)
            cand_cost = cost(cand_q)
            delta = pair_changes(current, cand, cand_cost - current_cost)
            take = delta < 0
            gain = float(-delta[take].sum())
            accept = torch.zeros(P, dtype=torch.bool, device=best_q.device)
            accept[:n] = torch.from_numpy(take).to(best_q.device)
            best_q[accept] = cand_q[accept]
            current = PairScores(np.where(take, cand.seg, current.seg), np.where(take, cand.mse, current.mse))
            current_cost = np.where(take, cand_cost, current_cost)
            epochs = epoch + 1
            history.append({"epoch": epochs, "accepted": int(take.sum()), "gain": gain,
                            "score": current.score()})
            bar.set_postfix(accepted=int(take.sum()), gain=f"{gain:.3g}", refresh=False)
            if gain < settings.min_gain:
                break
    finally:
        bar.close()
    final = exact_pair_scores(renderer, best_q * scale, targets, scorers)
    changed = int((best_q != start_q).any(dim=1).sum())
    final_total = final.score() + float(cost(best_q).sum())
    if changed and final_total >= start.score() + float(start_cost.sum()):
        best_q, final, changed = start_q, start, 0     # keep the old codes
    return TTOResult(codes=(best_q * scale).detach(), before=start, after=final, epochs=epochs,
                     changed_pairs=changed, history=history)


def settings_from(config: Mapping[str, object], **overrides) -> TTOSettings:
    """``TTOSettings`` from a mapping of its field names (unknown names are an error)."""
    known = set(TTOSettings.__dataclass_fields__) - {"weights"}
    unknown = sorted(set(config) - known)
    if unknown:
        raise InputError(f"unknown TTO settings: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return TTOSettings(**{**config, **overrides})
