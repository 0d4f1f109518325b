"""Reference quantizers in numpy: the exact arithmetic every backend's fake-quant must match.

``quantize(x, spec)`` gives a ``Quantized`` (integer or float16 codes plus
float16 scales and uint8 zero points); ``dequantize`` turns it back into
float32 with the formulas of docs/archive-format.md section 4. Scales are
rounded up to float16, so every code stays in range and the error is at most
half a step (a full step for FP4, whose widest gap is 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tac_core.archive import format as fmt
from tac_core.archive.errors import MalformedArchiveError, QuantizationError, UnknownIdError

# magnitudes of the E2M1 codes 0..7; bit 3 of a code is its sign
FP4_MAGNITUDES = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0], dtype=np.float32)
_FP4_MIDPOINTS = (FP4_MAGNITUDES[1:] + FP4_MAGNITUDES[:-1]) / 2
_INT = {"int8_sym": (127, True), "int8_asym": (255, False), "int4_sym": (7, True), "int4_asym": (15, False)}
_PACKED = {"int4_sym", "int4_asym", "fp4_e2m1"}


@dataclass(frozen=True)
class QuantSpec:
    """How to quantise one tensor: ``kind`` (a quantizer name), the scale ``axis`` (None = per
    tensor), the FP4 ``block`` and, for ``raw``, the stored ``dtype`` (None = the array's own)."""

    kind: str
    axis: int | None = None
    block: int = 32
    dtype: str | None = None

    def __post_init__(self):
        if self.kind not in fmt.QUANTIZER_IDS:
            raise QuantizationError(f"unknown quantizer {self.kind!r}; known: {', '.join(fmt.QUANTIZER_IDS)}")
        if self.kind == "fp4_e2m1":
            lo, hi = fmt.FP4_BLOCK_RANGE
            if not (lo <= self.block <= hi and self.block & (self.block - 1) == 0):
                raise QuantizationError(f"FP4 block must be a power of two in [{lo}, {hi}], got {self.block}")
        if self.axis is not None and (self.kind not in _INT or not 0 <= self.axis < fmt.MAX_RANK):
            raise QuantizationError(f"quantizer {self.kind} cannot take a scale axis of {self.axis}")

    @property
    def quantizer_id(self) -> int:
        return fmt.QUANTIZER_IDS[self.kind]

    def wire_arg(self) -> int:
        """The section's quantizer argument (docs section 4)."""
        if self.kind == "raw":
            return dtype_code(np.dtype(self.dtype))
        if self.kind == "fp4_e2m1":
            return self.block
        if self.kind in _INT:
            return 0 if self.axis is None else self.axis + 1
        return 0

    @property
    def has_params(self) -> bool:
        return self.kind in _INT or self.kind == "fp4_e2m1"


def dtype_code(dtype: np.dtype) -> int:
    """The wire code of a numpy dtype the ``raw`` quantizer can store."""
    for code, wire in fmt.DTYPES.items():
        if np.dtype(dtype) == wire or np.dtype(dtype) == wire.newbyteorder(">"):
            return code
    raise QuantizationError(f"dtype {dtype} cannot be stored raw; use one of "
                            f"{', '.join(str(d) for d in fmt.DTYPES.values())}")


def spec_from_wire(qid: int, arg: int) -> QuantSpec:
    """The ``QuantSpec`` a section header describes; ``UnknownIdError``/``MalformedArchiveError`` if none."""
    kind = fmt.QUANTIZERS.get(qid)
    if kind is None:
        raise UnknownIdError(f"unknown quantizer id {qid}; this reader knows {sorted(fmt.QUANTIZERS)}")
    if kind == "raw":
        if arg not in fmt.DTYPES:
            raise UnknownIdError(f"unknown dtype code {arg} for the raw quantizer")
        return QuantSpec("raw", dtype=fmt.DTYPES[arg].str)
    if kind == "fp16":
        if arg != 0:
            raise MalformedArchiveError(f"fp16 quantizer argument must be 0, got {arg}")
        return QuantSpec("fp16")
    if kind == "fp4_e2m1":
        try:
            return QuantSpec(kind, block=arg)
        except QuantizationError as exc:
            raise MalformedArchiveError(str(exc)) from None
    if arg > fmt.MAX_RANK:
        raise MalformedArchiveError(f"{kind} scale axis code {arg} exceeds the rank cap {fmt.MAX_RANK}")
    return QuantSpec(kind, axis=None if arg == 0 else arg - 1)


@dataclass(frozen=True, eq=False)
class Quantized:
    """A quantised tensor: unpacked ``codes`` in the tensor's ``shape``, plus its parameters.

    codes dtype: int8 (``*_sym``), uint8 (``*_asym``, FP4 codes 0..15), float16 (``fp16``)
    or the stored dtype (``raw``). ``scales`` are float16, ``zero_points`` uint8.
    """

    spec: QuantSpec
    codes: np.ndarray
    scales: np.ndarray | None = None
    zero_points: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.codes.shape)

    def same_as(self, other: "Quantized") -> bool:
        """Whether two quantised tensors hold identical codes and parameters."""
        def eq(a, b):
            return (a is None and b is None) or (a is not None and b is not None and a.dtype == b.dtype
                                                 and a.shape == b.shape and np.array_equal(a, b))
        return (self.spec == other.spec and eq(self.codes, other.codes) and eq(self.scales, other.scales)
                and eq(self.zero_points, other.zero_points))


def up16(v: np.ndarray) -> np.ndarray:
    """The smallest float16 >= each float32 value (the smallest positive one for tiny positives)."""
    v = np.asarray(v, dtype=np.float32)
    with np.errstate(over="ignore"):
        h = v.astype(np.float16)
    low = h.astype(np.float32) < v
    h = np.where(low, np.nextafter(h, np.float16(np.inf)), h)
    if not np.all(np.isfinite(h)):
        raise QuantizationError("a scale overflows float16 (values above ~8e6 for int8); "
                                "rescale the tensor or store it raw")
    return h


def channel_count(spec: QuantSpec, shape: tuple[int, ...]) -> int:
    """How many scales the tensor has (1 per tensor, one per channel, or one per FP4 block)."""
    n = int(np.prod(shape, dtype=np.int64))
    if spec.kind == "fp4_e2m1":
        return -(-n // spec.block)
    if spec.kind in _INT:
        if spec.axis is None:
            return 1
        if spec.axis >= len(shape):
            raise QuantizationError(f"scale axis {spec.axis} is out of range for shape {shape}")
        return int(shape[spec.axis])
    return 0


def _scale_view(s: np.ndarray, spec: QuantSpec, ndim: int) -> np.ndarray:
    """Scales reshaped to broadcast against the tensor."""
    s = s.astype(np.float32)
    if spec.axis is None:
        return s.reshape(())
    shape = [1] * ndim
    shape[spec.axis] = -1
    return s.reshape(shape)


def _reduce(x: np.ndarray, spec: QuantSpec, fn) -> np.ndarray:
    if spec.axis is None:
        return np.asarray(fn(x) if x.size else np.float32(0), dtype=np.float32).reshape(1)
    axes = tuple(i for i in range(x.ndim) if i != spec.axis)
    if x.size == 0:
        return np.zeros(x.shape[spec.axis], dtype=np.float32)
    return fn(x, axis=axes).astype(np.float32).reshape(-1)


def quantize(x: np.ndarray, spec: QuantSpec) -> Quantized:
    """Quantise ``x`` with ``spec`` using the reference formulas (docs section 4)."""
    x = np.asarray(x)
    if x.ndim > fmt.MAX_RANK or x.size > fmt.MAX_TENSOR_ELEMENTS:
        raise QuantizationError(f"tensor of shape {x.shape} exceeds the format's caps "
                                f"(rank {fmt.MAX_RANK}, {fmt.MAX_TENSOR_ELEMENTS} elements)")
    if spec.kind == "raw":
        dtype = np.dtype(spec.dtype) if spec.dtype else x.dtype
        code = dtype_code(dtype)
        if spec.dtype is None or np.dtype(spec.dtype) != fmt.DTYPES[code]:
            spec = QuantSpec("raw", dtype=fmt.DTYPES[code].str)
        if x.dtype != np.dtype(spec.dtype).newbyteorder("=") and not np.can_cast(x.dtype, spec.dtype, "safe"):
            raise QuantizationError(f"raw {spec.dtype} cannot hold a {x.dtype} tensor without loss")
        return Quantized(spec, np.ascontiguousarray(x.astype(np.dtype(spec.dtype).newbyteorder("="))))
    xf = x.astype(np.float32)
    if not np.all(np.isfinite(xf)):
        raise QuantizationError("tensor has NaN or infinite values; quantisers need finite inputs")
    if spec.kind == "fp16":
        with np.errstate(over="ignore"):
            h = xf.astype(np.float16)
        if not np.all(np.isfinite(h)):
            raise QuantizationError("tensor has values beyond float16's range (65504)")
        return Quantized(spec, h)
    if spec.kind == "fp4_e2m1":
        return _quantize_fp4(xf, spec)
    channel_count(spec, xf.shape)  # validates the axis
    qmax, symmetric = _INT[spec.kind]
    with np.errstate(divide="ignore", invalid="ignore"):
        if symmetric:
            s = up16(_reduce(np.abs(xf), spec, np.max) / np.float32(qmax))
            sv = _scale_view(s, spec, xf.ndim)
            q = np.where(sv > 0, np.rint(xf / np.where(sv > 0, sv, 1)), 0)
            return Quantized(spec, np.clip(q, -qmax, qmax).astype(np.int8), s)
        lo = np.minimum(_reduce(xf, spec, np.min), 0)
        hi = np.maximum(_reduce(xf, spec, np.max), 0)
        s = up16((hi - lo) / np.float32(qmax))
        s32 = s.astype(np.float32)
        z = np.where(s32 > 0, np.clip(np.rint(-lo / np.where(s32 > 0, s32, 1)), 0, qmax), 0).astype(np.uint8)
        sv = _scale_view(s, spec, xf.ndim)
        zv = _scale_view(z, spec, xf.ndim)
        q = np.where(sv > 0, np.rint(xf / np.where(sv > 0, sv, 1)) + zv, zv)
        return Quantized(spec, np.clip(q, 0, qmax).astype(np.uint8), s, z)


def _quantize_fp4(xf: np.ndarray, spec: QuantSpec) -> Quantized:
    flat = xf.reshape(-1)
    n, block = flat.size, spec.block
    padded = np.zeros(-(-n // block) * block, dtype=np.float32)
    padded[:n] = flat
    blocks = padded.reshape(-1, block)
    s = up16(np.abs(blocks).max(axis=1) / np.float32(6.0)) if n else np.zeros(0, np.float16)
    s32 = s.astype(np.float32)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.where(s32 > 0, np.abs(blocks) / np.where(s32 > 0, s32, 1), 0).astype(np.float32)
    idx = np.searchsorted(_FP4_MIDPOINTS, mag, side="left")
    tie = (idx < len(_FP4_MIDPOINTS)) & (mag == _FP4_MIDPOINTS[np.minimum(idx, len(_FP4_MIDPOINTS) - 1)])
    idx = np.where(tie & (idx % 2 == 1), idx + 1, idx)  # ties go to the even code
    sign = (blocks < 0) & (idx > 0)
    codes = (idx + 8 * sign).astype(np.uint8).reshape(-1)[:n].reshape(xf.shape)
    return Quantized(spec, codes, s)


def dequantize(q: Quantized) -> np.ndarray:
    """Float32 values of a quantised tensor (a ``raw`` tensor comes back unchanged)."""
    spec = q.spec
    if spec.kind == "raw":
        return q.codes
    if spec.kind == "fp16":
        return q.codes.astype(np.float32)
    if spec.kind == "fp4_e2m1":
        flat = q.codes.reshape(-1)
        vals = FP4_MAGNITUDES[flat & 7] * np.where(flat & 8, np.float32(-1), np.float32(1))
        s = np.repeat(q.scales.astype(np.float32), spec.block)[:flat.size]
        return (vals * s).astype(np.float32).reshape(q.shape)
    sv = _scale_view(q.scales, spec, q.codes.ndim)
    if spec.kind.endswith("_sym"):
        return (q.codes.astype(np.float32) * sv).astype(np.float32)
    zv = _scale_view(q.zero_points, spec, q.codes.ndim)
    return ((q.codes.astype(np.float32) - zv) * sv).astype(np.float32)
