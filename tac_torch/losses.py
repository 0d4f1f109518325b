"""Losses that track the contest score: 100 * seg + sqrt(10 * pose) + 25 * rate.

    ChainOutput.seg_logits (B,5,384,512), target classes (B,384,512) --margin surrogate--> seg
    ChainOutput.pose (B,12), target pose (B,12) --sqrt(10 * MSE of the first 6)--> pose
    parameters + their QuantSpecs --Laplace entropy of the codes--> bits --> bytes / original --> rate

The argmax disagreement has no gradient, so SegNet is trained on the lead
of the target class's logit over the best other class: pixels that lead by
a wide margin cost nearly nothing, pixels near the decision boundary cost
most. The rate term estimates what the entropy coder will spend on the
quantised weights, so the optimiser sees bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F

from tac_core import contract
from tac_core.archive import QuantSpec
from tac_core.errors import InputError
from tac_torch.quant import as_rows, row_layout, row_scales
from tac_torch.scorers import seg_classes

_MIN_MASS = 1e-9                # floor of a code's probability: at most ~30 bits per element
_MIN_LAPLACE_B = 0.05           # Laplace scale floor, in quantisation steps


@dataclass(frozen=True)
class LossWeights:
    """Weights of the score's terms and the seg surrogate's shape (defaults: the score's own)."""

    seg: float = contract.SEG_WEIGHT
    pose: float = 1.0                       # multiplies sqrt(10 * MSE), as the score does
    rate: float = contract.RATE_WEIGHT
    margin: float = 2.0                     # logit lead at which a pixel counts as safe
    temperature: float = 0.5                # softness of the surrogate around the margin
    boost: float = 3.0                      # extra weight of pixels whose lead is within the margin

    def __post_init__(self):
        for name in ("seg", "pose", "rate", "margin", "boost"):
            if not getattr(self, name) >= 0:
                raise InputError(f"loss weight {name} must be >= 0, got {getattr(self, name)!r}")
        if not self.temperature > 0:
            raise InputError(f"loss temperature must be > 0, got {self.temperature!r}")


def _check_seg(logits: torch.Tensor, target: torch.Tensor) -> None:
    if logits.dim() != 4 or target.dim() != 3 or logits.shape[:1] + logits.shape[2:] != target.shape:
        raise InputError(f"seg logits (B, C, H, W) and target classes (B, H, W) must agree, got "
                         f"{tuple(logits.shape)} and {tuple(target.shape)}")


def seg_lead(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per pixel, the target class's logit minus the best other class's: > 0 where argmax agrees."""
    _check_seg(logits, target)
    idx = target.long().unsqueeze(1)
    own = logits.gather(1, idx).squeeze(1)
    others = logits.scatter(1, idx, float("-inf"))
    return own - others.amax(dim=1)


def seg_margin_loss(logits: torch.Tensor, target: torch.Tensor, weights: LossWeights = LossWeights(),
                    margin: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted mean over pixels of ``softplus((margin - lead) / T) / softplus(margin / T)``.

    1 at a lead of 0, about 0 well past the margin, linear for a wrong class;
    pixels whose |lead| is within the margin weigh ``1 + boost``. Scale: like
    the fraction of pixels that disagree. ``margin`` (B, H, W), positive, gives each pixel
    its own margin instead of ``weights.margin``.
    """
    lead = seg_lead(logits.float(), target)
    t = weights.temperature
    if margin is None:
        m = torch.tensor(weights.margin, device=lead.device)
    elif margin.shape != lead.shape or not bool((margin > 0).all()):
        raise InputError(f"per-pixel margins must be positive and shaped like the target {tuple(lead.shape)}, "
                         f"got {tuple(margin.shape)}")
    else:
        m = margin.detach().float()
    per_pixel = F.softplus((m - lead) / t) / F.softplus(m / t)
    w = 1.0 + weights.boost * (lead.detach().abs() < m).float()
    return (per_pixel * w).sum() / w.sum()


@torch.no_grad()
def seg_disagreement(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The score's seg distortion: fraction of pixels whose argmax differs from the target."""
    _check_seg(logits, target)
    return (seg_classes(logits) != target.long()).float().mean()


def pose_mse(pose: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the first 6 pose outputs over the batch (the score's pose)."""
    if pose.dim() != 2 or pose.shape != target.shape or pose.shape[1] < contract.POSE_SCORED:
        raise InputError(f"pose and target must both be (B, {contract.POSE_OUTPUTS}), got "
                         f"{tuple(pose.shape)} and {tuple(target.shape)}")
    n = contract.POSE_SCORED
    return (pose[:, :n].float() - target[:, :n].float()).pow(2).mean()


def pose_term(pose: torch.Tensor, target: torch.Tensor, eps: float = 1e-12,
              reference: float | torch.Tensor | None = None) -> torch.Tensor:
    """``sqrt(10 * MSE)`` as in the score (MSE floored at ``eps`` so the gradient stays finite).

    With ``reference``, an estimate of the MSE over the whole clip, it is the tangent of that
    sqrt at ``reference`` instead: the same value there, and a gradient that weighs every
    pair's squared error alike, as the score's sqrt of the clip's mean does. (The sqrt of one
    small batch's MSE pushes hardest on pairs that are already close.) A tensor ``reference``
    (``RunningMean`` on a GPU) stays on the device.
    """
    mse = pose_mse(pose, target)
    if reference is None:
        return torch.sqrt(contract.POSE_WEIGHT_INSIDE_SQRT * mse.clamp_min(eps))
    if isinstance(reference, torch.Tensor):                 # not yet finite: this batch's own MSE
        ref = reference.detach().float()
        ref = torch.where(torch.isfinite(ref), ref, mse.detach()).clamp_min(eps)
        root = torch.sqrt(contract.POSE_WEIGHT_INSIDE_SQRT * ref)
    else:
        ref = max(float(reference), eps)
        root = math.sqrt(contract.POSE_WEIGHT_INSIDE_SQRT * ref)
    return root + contract.POSE_WEIGHT_INSIDE_SQRT * (mse - ref) / (2 * root)


class RunningMean:
    """An exponential moving average of a training statistic (``value`` None until the first update).

    Updated with a GPU tensor (or started from a tensor ``value``), ``value`` is a tensor on
    that device, so that a training step need not wait for the GPU to read it back; otherwise
    it is a float. Non-finite updates are skipped either way."""

    def __init__(self, decay: float = 0.95, value: float | torch.Tensor | None = None):
        self.decay, self.value = decay, value

    def update(self, x: float | torch.Tensor) -> None:
        if isinstance(x, torch.Tensor) and (x.device.type != "cpu" or isinstance(self.value, torch.Tensor)):
            x = x.detach().float()
            if self.value is None:
                self.value = x.clone()
                return
            prev = torch.as_tensor(self.value, dtype=torch.float32, device=x.device)
            mean = torch.where(torch.isfinite(prev), self.decay * prev + (1 - self.decay) * x, x)
            self.value = torch.where(torch.isfinite(x), mean, prev)
            return
        x = float(x)
        if math.isfinite(x):
            self.value = x if self.value is None else self.decay * float(self.value) + (1 - self.decay) * x

    def as_float(self) -> float | None:
        """``value`` as a float (None before the first finite update); reads a GPU value back."""
        if self.value is None:
            return None
        v = float(self.value)
        return v if math.isfinite(v) else None


def _laplace_cdf(u: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 0.5 - 0.5 * torch.sign(u) * torch.expm1(-u.abs() / b)


def tensor_bits(x: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """Estimated bits to code ``x`` quantised by ``spec``: ``-log2`` of each code's mass under a
    Laplace fitted to the tensor (in quantisation steps: centred on the codes' median, scaled by
    their mean distance to it), differentiable through ``x / scale``; ``raw`` and ``fp16``
    tensors cost their size."""
    return rate_bits({"x": x}, {"x": spec})


def rate_bits(params: Mapping[str, torch.Tensor], specs: Mapping[str, QuantSpec]) -> torch.Tensor:
    """Estimated bits of every tensor in ``specs`` (weights and latents alike): the sum of their
    ``tensor_bits``, computed for all tensors of one integer quantizer at once (a few dozen
    operations in all, not a few dozen per tensor, and nothing read back from a GPU)."""
    missing = sorted(set(specs) - set(params))
    if missing:
        raise InputError(f"rate specs name tensors that were not given: {', '.join(missing[:4])}")
    if not specs:
        raise InputError("the rate term needs at least one tensor and its QuantSpec")
    fixed, groups = 0.0, {}
    for name, spec in specs.items():
        x = params[name]
        if spec.kind == "raw":
            fixed += x.numel() * x.element_size() * 8
        elif spec.kind == "fp16":
            fixed += x.numel() * 16
        elif x.numel():
            groups.setdefault((spec.kind, spec.axis), []).append(x)
    total = next(iter(params.values())).new_zeros((), dtype=torch.float32) + fixed   # no copy to a GPU
    for (kind, axis), xs in groups.items():
        total = total + _group_bits(xs, kind, axis)
    return total


def _group_bits(xs: list[torch.Tensor], kind: str, axis: int | None) -> torch.Tensor:
    """``sum(tensor_bits(x, QuantSpec(kind, axis)) for x in xs)`` for non-empty tensors, at once."""
    rows = [as_rows(x.float(), axis) for x in xs]
    layout = row_layout(tuple(tuple(r.shape) for r in rows), xs[0].device)
    flat = torch.cat([r.reshape(-1) for r in rows])
    s, _ = row_scales(flat.detach(), layout, kind, checked=False)
    y = flat / torch.where(s > 0, s, torch.ones_like(s))[layout.row_of]     # codes, continuous; scale fixed
    with torch.no_grad():                        # each tensor's lower median and mean distance to it
        yd, tensor_of, sizes = y.detach(), layout.tensor_of, layout.sizes
        by_value = torch.argsort(yd)
        grouped = by_value[torch.argsort(tensor_of[by_value], stable=True)]
        centre = yd[grouped[torch.cumsum(sizes, 0) - sizes + (sizes - 1) // 2]]
        spread = torch.zeros_like(centre).index_add_(0, tensor_of, (yd - centre[tensor_of]).abs())
        b = (spread / sizes).clamp_min(_MIN_LAPLACE_B)[tensor_of]
    u = y - centre[tensor_of]
    mass = _laplace_cdf(u + 0.5, b) - _laplace_cdf(u - 0.5, b)
    return -torch.log2(mass.clamp_min(_MIN_MASS)).sum()


def score_loss(pose: torch.Tensor, seg_logits: torch.Tensor, pose_target: torch.Tensor,
               seg_target: torch.Tensor, *, params: Mapping[str, torch.Tensor] | None = None,
               specs: Mapping[str, QuantSpec] | None = None, weights: LossWeights = LossWeights(),
               original_bytes: int = contract.CONTEST_VIDEO_BYTES, overhead_bytes: int = 0,
               pose_reference: float | torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The training loss and its parts.

    Keys: ``loss`` (what to minimise), ``seg``, ``pose``, ``rate`` (its weighted
    terms), and, without gradients, ``seg_disagreement``, ``pose_mse`` and
    ``bytes`` (estimated archive bytes: coded tensors + ``overhead_bytes``), all
    tensors (nothing is read back from a GPU here). Without ``specs``
    the rate term is 0 and ``bytes`` is ``overhead_bytes``. ``pose_reference``
    linearises the pose term (``pose_term``).
    """
    if original_bytes <= 0:
        raise InputError(f"original_bytes must be positive, got {original_bytes}")
    seg = weights.seg * seg_margin_loss(seg_logits, seg_target, weights)
    pose_sqrt = pose_term(pose, pose_target, reference=pose_reference)
    if specs:
        if params is None:
            raise InputError("the rate term needs the tensors its specs name (params)")
        nbytes = rate_bits(params, specs) / 8 + overhead_bytes
    else:
        nbytes = pose.new_zeros((), dtype=torch.float32) + float(overhead_bytes)
    rate = weights.rate * nbytes / original_bytes
    loss = seg + weights.pose * pose_sqrt + rate
    with torch.no_grad():
        disagree = seg_disagreement(seg_logits, seg_target)
        mse = pose_mse(pose, pose_target)
    return {"loss": loss, "seg": seg, "pose": weights.pose * pose_sqrt, "rate": rate,
            "seg_disagreement": disagree, "pose_mse": mse.detach(), "bytes": nbytes.detach()}
