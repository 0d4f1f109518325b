"""Quantised tensors <-> the raw byte streams a section concatenates (docs section 4).

Sizes are computed from shapes and the quantizer alone, so a reader knows
how many bytes each stream must decode to before decoding anything.
"""

from __future__ import annotations

import numpy as np

from tac_core.archive.errors import ArchiveWriteError, MalformedArchiveError
from tac_core.archive.quantizers import QuantSpec, Quantized, channel_count

_CODE_DTYPES = {"int8_sym": np.int8, "int8_asym": np.uint8, "int4_sym": np.int8, "int4_asym": np.uint8,
                "fp4_e2m1": np.uint8, "fp16": np.dtype("<f2")}
_CODE_RANGES = {"int8_sym": (-127, 127), "int4_sym": (-7, 7), "int4_asym": (0, 15), "fp4_e2m1": (0, 15)}
_PACKED = ("int4_sym", "int4_asym", "fp4_e2m1")


def element_count(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def codes_size(spec: QuantSpec, shape: tuple[int, ...]) -> int:
    """Bytes of one tensor's codes stream."""
    n = element_count(shape)
    if spec.kind in _PACKED:
        return (n + 1) // 2
    if spec.kind == "raw":
        return n * np.dtype(spec.dtype).itemsize
    return n * np.dtype(_CODE_DTYPES[spec.kind]).itemsize


def params_size(spec: QuantSpec, shape: tuple[int, ...]) -> int:
    """Bytes of one tensor's parameter stream (scales, then zero points)."""
    c = channel_count(spec, shape)
    return c * 3 if spec.kind.endswith("_asym") else c * 2


def code_element_width(spec: QuantSpec) -> int:
    """Bytes per element in the codes stream (1 for packed codes)."""
    if spec.kind == "raw":
        return np.dtype(spec.dtype).itemsize
    return 1 if spec.kind in _PACKED else np.dtype(_CODE_DTYPES[spec.kind]).itemsize


def check_quantized(name: str, q: Quantized) -> None:
    """Refuse a ``Quantized`` whose codes or parameters the format cannot carry as given."""
    spec, shape = q.spec, q.shape
    if len(shape) > 8 or element_count(shape) > (1 << 28):
        raise ArchiveWriteError(f"{name}: shape {shape} exceeds the format's caps (rank 8, 2^28 elements)")
    want = np.dtype(spec.dtype).newbyteorder("=") if spec.kind == "raw" else np.dtype(_CODE_DTYPES[spec.kind])
    if q.codes.dtype != want.newbyteorder("="):
        raise ArchiveWriteError(f"{name}: {spec.kind} codes must be {want}, got {q.codes.dtype}")
    lo_hi = _CODE_RANGES.get(spec.kind)
    if lo_hi and q.codes.size and (q.codes.min() < lo_hi[0] or q.codes.max() > lo_hi[1]):
        raise ArchiveWriteError(f"{name}: {spec.kind} codes must lie in [{lo_hi[0]}, {lo_hi[1]}]")
    if spec.has_params:
        c = channel_count(spec, shape)
        if q.scales is None or q.scales.dtype != np.float16 or q.scales.shape != (c,):
            raise ArchiveWriteError(f"{name}: {spec.kind} needs {c} float16 scales")
        if not np.all(np.isfinite(q.scales)) or np.any(q.scales < 0):
            raise ArchiveWriteError(f"{name}: scales must be finite and >= 0")
        if spec.kind.endswith("_asym"):
            zmax = 255 if spec.kind == "int8_asym" else 15
            if (q.zero_points is None or q.zero_points.dtype != np.uint8 or q.zero_points.shape != (c,)
                    or (c and q.zero_points.max() > zmax)):
                raise ArchiveWriteError(f"{name}: {spec.kind} needs {c} uint8 zero points in [0, {zmax}]")


def codes_to_bytes(q: Quantized) -> bytes:
    """One tensor's codes, as stored (little-endian; 4-bit codes packed low nibble first)."""
    spec = q.spec
    if spec.kind == "raw":
        return np.ascontiguousarray(q.codes, dtype=np.dtype(spec.dtype)).tobytes()
    flat = q.codes.reshape(-1)
    if spec.kind in _PACKED:
        nib = (flat.astype(np.int16) & 0xF).astype(np.uint8)
        if nib.size % 2:
            nib = np.append(nib, np.uint8(0))
        return (nib[0::2] | (nib[1::2] << 4)).astype(np.uint8).tobytes()
    return np.ascontiguousarray(flat, dtype=_CODE_DTYPES[spec.kind]).tobytes()


def codes_from_bytes(spec: QuantSpec, shape: tuple[int, ...], buf: bytes, name: str) -> np.ndarray:
    """Codes of one tensor from its stored bytes, validated (range, padding)."""
    n = element_count(shape)
    if spec.kind == "raw":
        dt = np.dtype(spec.dtype)
        return np.frombuffer(buf, dtype=dt).astype(dt.newbyteorder("="), copy=True).reshape(shape)
    if spec.kind in _PACKED:
        packed = np.frombuffer(buf, dtype=np.uint8)
        nib = np.empty(packed.size * 2, dtype=np.uint8)
        nib[0::2] = packed & 0xF
        nib[1::2] = packed >> 4
        if n % 2 and nib[-1] != 0:
            raise MalformedArchiveError(f"{name}: non-zero padding nibble after its last 4-bit code")
        nib = nib[:n]
        if spec.kind == "int4_sym":
            if np.any(nib == 8):
                raise MalformedArchiveError(f"{name}: int4_sym code -8 is not allowed (codes are -7..7)")
            return ((nib.astype(np.int16) ^ 8) - 8).astype(np.int8).reshape(shape)
        return nib.reshape(shape)
    codes = np.frombuffer(buf, dtype=_CODE_DTYPES[spec.kind])
    if spec.kind == "int8_sym" and codes.size and codes.min() == -128:
        raise MalformedArchiveError(f"{name}: int8_sym code -128 is not allowed (codes are -127..127)")
    return codes.astype(codes.dtype.newbyteorder("="), copy=True).reshape(shape)


def params_to_bytes(q: Quantized) -> bytes:
    """One tensor's scales (float16 LE) followed by its zero points (uint8), if any."""
    if not q.spec.has_params:
        return b""
    out = q.scales.astype("<f2").tobytes()
    if q.spec.kind.endswith("_asym"):
        out += q.zero_points.astype(np.uint8).tobytes()
    return out


def params_from_bytes(spec: QuantSpec, shape: tuple[int, ...], buf: bytes, name: str):
    """``(scales, zero_points)`` of one tensor from its stored bytes, validated."""
    c = channel_count(spec, shape)
    scales = np.frombuffer(buf[:2 * c], dtype="<f2").astype(np.float16)
    if not np.all(np.isfinite(scales)) or np.any(scales < 0):
        raise MalformedArchiveError(f"{name}: scales must be finite and >= 0")
    zeros = None
    if spec.kind.endswith("_asym"):
        zeros = np.frombuffer(buf[2 * c:3 * c], dtype=np.uint8).copy()
        if spec.kind == "int4_asym" and c and zeros.max() > 15:
            raise MalformedArchiveError(f"{name}: int4_asym zero points must be in [0, 15]")
    return scales, zeros
