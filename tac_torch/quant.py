"""Fake quantisation for quantisation-aware training, equal to the archive's quantizers bit for bit.

    x (float32) --scale from max|x| (or min/max), rounded up to float16--> s
      --rint(x / s), clip--> codes --dequantise as the archive does--> x_q (forward)
    backward: d x_q / d x = 1 (straight-through), no gradient to the scale

The forward value is exactly ``dequantize(quantize(x, spec))`` of
``tac_core.archive`` (docs/archive-format.md section 4): a network trained on
these values is, after export, the network the inflate runtime rebuilds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping

import torch
from torch import nn

from tac_core.archive import QuantSpec, QuantizationError

# an integer quantizer: its largest code and whether it is symmetric (no zero point)
INT_RANGE = {"int8_sym": (127, True), "int8_asym": (255, False), "int4_sym": (7, True), "int4_asym": (15, False)}
SUPPORTED = (*INT_RANGE, "fp16")


def up16(v: torch.Tensor, checked: bool = True) -> torch.Tensor:
    """The smallest float16 >= each non-negative float32 value, widened back to float32.
    ``checked`` refuses a value beyond float16's range (reading the flag back waits for a GPU);
    unchecked, such a value becomes inf."""
    h = v.to(torch.float16)
    bits = h.view(torch.int16)
    bumped = torch.where(h.float() < v, bits + 1, bits).view(torch.float16)   # next float16 up
    if checked and not bool(torch.isfinite(bumped).all()):
        raise QuantizationError("a scale overflows float16 (values above ~8e6 for int8); "
                                "rescale the tensor or store it raw")
    return bumped.float()


@torch.no_grad()
def scale_and_zero(x: torch.Tensor, spec: QuantSpec, checked: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The integer quantizer's float32 scales and zero points, shaped to broadcast against ``x``
    (``checked``: see ``up16``)."""
    if spec.kind not in INT_RANGE:
        raise QuantizationError(f"{spec.kind!r} has no integer scale; use one of {', '.join(INT_RANGE)}")
    rows = as_rows(x.detach().float(), spec.axis)
    s, z = row_scales(rows.reshape(-1), row_layout((tuple(rows.shape),), rows.device), spec.kind, checked)
    shape = [] if spec.axis is None else [-1 if d == spec.axis else 1 for d in range(x.dim())]
    return s.reshape(shape), z.reshape(shape)


@torch.no_grad()
def quantize_values(x: torch.Tensor, spec: QuantSpec, checked: bool = True) -> torch.Tensor:
    """``dequantize(quantize(x, spec))`` in torch: the float32 values the archive will hold.
    ``checked`` refuses non-finite inputs and scales; unchecked (training's fake quantisation
    on a GPU, where each check would stall a step) they pass through as non-finite values."""
    if spec.kind not in SUPPORTED:
        raise QuantizationError(f"no fake quantiser for {spec.kind!r}; torch has {', '.join(SUPPORTED)}")
    return _quantized([x.detach().float()], spec.kind, spec.axis, checked)[0]


def _quantized(xs: list[torch.Tensor], kind: str, axis: int | None, checked: bool) -> list[torch.Tensor]:
    """``quantize_values`` of float32 tensors of one quantizer, computed on all of them at once."""
    rows = [as_rows(x, axis) for x in xs]
    flat = torch.cat([r.reshape(-1) for r in rows])
    if checked and not bool(torch.isfinite(flat).all()):
        raise QuantizationError("tensor has NaN or infinite values; quantisers need finite inputs")
    if kind == "fp16":
        h = flat.to(torch.float16)
        if checked and not bool(torch.isfinite(h).all()):
            raise QuantizationError("tensor has values beyond float16's range (65504)")
        q = h.float()
    else:
        layout = row_layout(tuple(tuple(r.shape) for r in rows), flat.device)
        s, z = row_scales(flat, layout, kind, checked)
        q = _dequantized(flat, s[layout.row_of], z[layout.row_of], kind)
    out = []
    for x, part in zip(xs, torch.split(q, [r.numel() for r in rows])):
        if axis is not None:                      # rows back to the tensor: undo as_rows' movedim
            moved = list(x.shape)
            moved.insert(0, moved.pop(axis))
            part = part.reshape(moved).movedim(0, axis)
        out.append(part.reshape(x.shape))
    return out


def _dequantized(x: torch.Tensor, s: torch.Tensor, z: torch.Tensor, kind: str) -> torch.Tensor:
    """``x`` rounded to the integer codes of scales ``s`` and zero points ``z`` (broadcast
    against it) and back to float32."""
    qmax, symmetric = INT_RANGE[kind]
    safe = torch.where(s > 0, s, torch.ones_like(s))
    if symmetric:
        q = torch.where(s > 0, torch.round(x / safe), torch.zeros_like(x)).clamp(-qmax, qmax)
        return q.to(torch.int32).float() * s      # through integers, as the codes are: no -0.0
    q = torch.where(s > 0, torch.round(x / safe) + z, z.expand_as(x)).clamp(0, qmax)
    return (q.to(torch.int32).float() - z.to(torch.int32).float()) * s


class _StraightThrough(torch.autograd.Function):
    """Forward: tensors of one quantizer ``(kind, axis)``, quantised together (checked on a CPU,
    where the checks cost nothing); backward: the incoming gradients unchanged."""

    @staticmethod
    def forward(ctx, kind, axis, *xs):
        quantized = _quantized([x.detach().float() for x in xs], kind, axis, checked=xs[0].device.type == "cpu")
        return tuple(q.to(x.dtype) for x, q in zip(xs, quantized))

    @staticmethod
    def backward(ctx, *grads):
        return (None, None, *grads)


def fake_quantize(x: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """Quantise-dequantise ``x`` as the archive does, with a straight-through gradient."""
    if not isinstance(spec, QuantSpec):
        raise QuantizationError(f"spec must be a tac_core.archive.QuantSpec, got {type(spec).__name__}")
    if spec.kind == "raw":
        return x
    if spec.kind not in SUPPORTED:
        raise QuantizationError(f"no fake quantiser for {spec.kind!r}; torch has {', '.join(SUPPORTED)}")
    return _StraightThrough.apply(spec.kind, spec.axis, x)[0]


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
    network on its quantised weights while the float weights keep training. The
    tensors of one quantizer are quantised together: ``fake_quantize``'s values, in a
    few operations for all of them.
    """
    names = dict(module.named_parameters())
    unknown = sorted(set(specs) - set(names))
    if unknown:
        raise QuantizationError(f"quantizer specs name parameters the module lacks: {', '.join(unknown[:4])}")
    out = dict(names)
    groups: dict[tuple[str, int | None], list[str]] = {}
    for name, spec in specs.items():
        if not isinstance(spec, QuantSpec):
            raise QuantizationError(f"spec must be a tac_core.archive.QuantSpec, got {type(spec).__name__}")
        if spec.kind not in (*SUPPORTED, "raw"):
            raise QuantizationError(f"no fake quantiser for {spec.kind!r}; torch has {', '.join(SUPPORTED)}")
        if spec.kind != "raw" and names[name].numel():
            groups.setdefault((spec.kind, spec.axis), []).append(name)
    for (kind, axis), group in groups.items():
        out.update(zip(group, _StraightThrough.apply(kind, axis, *(names[n] for n in group))))
    return out


# --- the tensors of one quantizer together -------------------------------------------

@dataclass(frozen=True)
class RowLayout:
    """Tensors cut into rows (one per scale) and concatenated: each element's row and tensor."""

    row_of: torch.Tensor        # (elements,) int64
    tensor_of: torch.Tensor     # (elements,) int64
    sizes: torch.Tensor         # (tensors,) int64: elements per tensor
    rows: int


def as_rows(x: torch.Tensor, axis: int | None) -> torch.Tensor:
    """``x`` as ``(scales, elements per scale)``: a row per channel along ``axis``, or one row."""
    if axis is None:
        return x.reshape(1, -1)
    if not 0 <= axis < x.dim():
        raise QuantizationError(f"scale axis {axis} is out of range for shape {tuple(x.shape)}")
    return x.movedim(axis, 0).reshape(x.shape[axis], -1)


@lru_cache(maxsize=32)
def row_layout(shapes: tuple[tuple[int, int], ...], device: torch.device) -> RowLayout:
    """The ``RowLayout`` on ``device`` of tensors whose ``as_rows`` shapes are ``shapes``."""
    rows = torch.tensor([r for r, _ in shapes], dtype=torch.int64)
    cols = torch.tensor([c for _, c in shapes], dtype=torch.int64)
    n_rows = int(rows.sum())
    row_of = torch.repeat_interleave(torch.arange(n_rows), cols.repeat_interleave(rows))
    tensor_of = torch.repeat_interleave(torch.arange(len(shapes)), rows * cols)
    return RowLayout(row_of.to(device), tensor_of.to(device), (rows * cols).to(device), n_rows)


@torch.no_grad()
def row_scales(flat: torch.Tensor, layout: RowLayout, kind: str,
               checked: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row scales and zero points of ``flat`` (rows concatenated as ``layout`` says): for each
    row, what ``scale_and_zero`` gives."""
    qmax, symmetric = INT_RANGE[kind]
    q32 = torch.tensor(float(qmax), dtype=torch.float32)
    zeros = flat.new_zeros(layout.rows)           # reduced with zero included: lo <= 0 <= hi
    if symmetric:
        s = up16(zeros.scatter_reduce(0, layout.row_of, flat.abs(), "amax") / q32, checked)
        return s, torch.zeros_like(s)
    lo = zeros.scatter_reduce(0, layout.row_of, flat, "amin")
    hi = zeros.scatter_reduce(0, layout.row_of, flat, "amax")
    s = up16((hi - lo) / q32, checked)
    safe = torch.where(s > 0, s, torch.ones_like(s))
    return s, torch.where(s > 0, torch.round(-lo / safe).clamp(0, qmax), torch.zeros_like(s))
