"""Fake quantisation for quantisation-aware training, equal to the archive's quantizers bit for bit.

    x (float32) --scale from max|x| (or min/max), rounded up to float16--> s
      --rint(x / s), clip--> codes --dequantise as the archive does--> x_q (forward)
    backward: d x_q / d x = 1 (straight-through), no gradient to the scale

The forward value is exactly ``dequantize(quantize(x, spec))`` of
``tac_core.archive`` (docs/archive-format.md section 4): a network trained on
these values is, after export, the network the inflate runtime rebuilds.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from tac_core.archive import QuantSpec, QuantizationError

_INT = {"int8_sym": (127, True), "int8_asym": (255, False), "int4_sym": (7, True), "int4_asym": (15, False)}
SUPPORTED = (*_INT, "fp16")


def up16(v: torch.Tensor) -> torch.Tensor:
    """The smallest float16 >= each non-negative float32 value, widened back to float32."""
    h = v.to(torch.float16)
    bits = h.view(torch.int16)
    bumped = torch.where(h.float() < v, bits + 1, bits).view(torch.float16)   # next float16 up
    if not bool(torch.isfinite(bumped).all()):
        raise QuantizationError("a scale overflows float16 (values above ~8e6 for int8); "
                                "rescale the tensor or store it raw")
    return bumped.float()


def _reduce(x: torch.Tensor, axis: int | None, fn) -> torch.Tensor:
    """Per-tensor (shape ()) or per-channel (broadcastable along ``axis``) reduction."""
    if axis is None:
        return fn(x.reshape(-1), dim=0).values if x.numel() else x.new_zeros(())
    if not 0 <= axis < x.dim():
        raise QuantizationError(f"scale axis {axis} is out of range for shape {tuple(x.shape)}")
    moved = x.movedim(axis, 0).reshape(x.shape[axis], -1)
    shape = [1] * x.dim()
    shape[axis] = -1
    if moved.shape[1] == 0:
        return x.new_zeros(shape)
    return fn(moved, dim=1).values.reshape(shape)


@torch.no_grad()
def scale_and_zero(x: torch.Tensor, spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """The integer quantizer's float32 scales and zero points, shaped to broadcast against ``x``."""
    if spec.kind not in _INT:
        raise QuantizationError(f"{spec.kind!r} has no integer scale; use one of {', '.join(_INT)}")
    x = x.detach().float()
    qmax, symmetric = _INT[spec.kind]
    q32 = torch.tensor(float(qmax), dtype=torch.float32)
    if symmetric:
        s = up16(_reduce(x.abs(), spec.axis, torch.max) / q32)
        return s, torch.zeros_like(s)
    lo = torch.clamp(_reduce(x, spec.axis, torch.min), max=0.0)
    hi = torch.clamp(_reduce(x, spec.axis, torch.max), min=0.0)
    s = up16((hi - lo) / q32)
    safe = torch.where(s > 0, s, torch.ones_like(s))
    return s, torch.where(s > 0, torch.round(-lo / safe).clamp(0, qmax), torch.zeros_like(s))


@torch.no_grad()
def quantize_values(x: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """``dequantize(quantize(x, spec))`` in torch: the float32 values the archive will hold."""
    if spec.kind not in SUPPORTED:
        raise QuantizationError(f"no fake quantiser for {spec.kind!r}; torch has {', '.join(SUPPORTED)}")
    x = x.detach().float()
    if not bool(torch.isfinite(x).all()):
        raise QuantizationError("tensor has NaN or infinite values; quantisers need finite inputs")
    if spec.kind == "fp16":
        h = x.to(torch.float16)
        if not bool(torch.isfinite(h).all()):
            raise QuantizationError("tensor has values beyond float16's range (65504)")
        return h.float()
    qmax, symmetric = _INT[spec.kind]
    s, z = scale_and_zero(x, spec)
    safe = torch.where(s > 0, s, torch.ones_like(s))
    if symmetric:
        q = torch.where(s > 0, torch.round(x / safe), torch.zeros_like(x)).clamp(-qmax, qmax)
        return q.to(torch.int32).float() * s      # through integers, as the codes are: no -0.0
    q = torch.where(s > 0, torch.round(x / safe) + z, z.expand_as(x)).clamp(0, qmax)
    return (q.to(torch.int32).float() - z.to(torch.int32).float()) * s


class _StraightThrough(torch.autograd.Function):
    """Forward: the quantised values; backward: the incoming gradient unchanged."""

    @staticmethod
    def forward(ctx, x, spec):
        return quantize_values(x, spec).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def fake_quantize(x: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """Quantise-dequantise ``x`` as the archive does, with a straight-through gradient."""
    if not isinstance(spec, QuantSpec):
        raise QuantizationError(f"spec must be a tac_core.archive.QuantSpec, got {type(spec).__name__}")
    if spec.kind == "raw":
        return x
    return _StraightThrough.apply(x, spec)


def weight_specs(module: nn.Module, kind: str = "int8_sym",
                 vector_kind: str | None = None) -> dict[str, QuantSpec]:
    """Default quantizers for a module's parameters: per output channel (axis 0) for tensors of
    rank >= 2, per tensor for vectors (``vector_kind`` or ``kind``)."""
    specs = {}
    for name, p in module.named_parameters():
        if p.dim() >= 2:
            specs[name] = QuantSpec(kind, axis=0)
        else:
            specs[name] = QuantSpec(vector_kind or kind)
    return specs


def fake_quantized_params(module: nn.Module, specs: Mapping[str, QuantSpec]) -> dict[str, torch.Tensor]:
    """The module's parameters, each fake-quantised by its spec (unlisted ones unchanged).

    Use with ``torch.func.functional_call(module, params, args)`` to run the
    network on its quantised weights while the float weights keep training.
    """
    names = dict(module.named_parameters())
    unknown = sorted(set(specs) - set(names))
    if unknown:
        raise QuantizationError(f"quantizer specs name parameters the module lacks: {', '.join(unknown[:4])}")
    return {n: fake_quantize(p, specs[n]) if n in specs else p for n, p in names.items()}
