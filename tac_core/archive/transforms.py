"""Size-preserving byte transforms that make quantised streams easier to entropy-code.

Each has a stable id (docs section 5), one integer argument, a forward and an
inverse. They work on uint8 numpy arrays and never change the length.
"""

from __future__ import annotations

import numpy as np

from tac_core.archive import format as fmt
from tac_core.archive.errors import MalformedArchiveError, UnknownIdError

_UINT = {1: np.uint8, 2: np.dtype("<u2"), 4: np.dtype("<u4")}


def check_transform(tid: int, arg: int, size: int) -> None:
    """Refuse a transform whose id or argument cannot apply to a stream of ``size`` bytes."""
    if tid not in fmt.TRANSFORMS:
        raise UnknownIdError(f"unknown transform id {tid}; this reader knows {sorted(fmt.TRANSFORMS)}")
    name = fmt.TRANSFORMS[tid]
    if tid == fmt.T_ZIGZAG and arg not in _UINT:
        raise MalformedArchiveError(f"zigzag width must be 1, 2 or 4, got {arg}")
    if tid == fmt.T_SPLIT and not 2 <= arg <= 8:
        raise MalformedArchiveError(f"split width must be in 2..8, got {arg}")
    if tid in (fmt.T_DELTA, fmt.T_TRANSPOSE) and arg < 1:
        raise MalformedArchiveError(f"{name} argument must be >= 1, got {arg}")
    if tid in (fmt.T_ZIGZAG, fmt.T_SPLIT, fmt.T_TRANSPOSE) and size % arg:
        raise MalformedArchiveError(f"{name}({arg}) needs a stream length that is a multiple of {arg}, "
                                    f"got {size} bytes")


def forward(tid: int, arg: int, x: np.ndarray) -> np.ndarray:
    """Apply transform ``tid`` to the uint8 array ``x``."""
    check_transform(tid, arg, x.size)
    if tid == fmt.T_ZIGZAG:
        u = x.view(_UINT[arg])
        bits = 8 * arg
        signed = u.view(np.dtype(f"<i{arg}"))
        return ((u << 1) ^ (signed >> (bits - 1)).view(u.dtype)).astype(u.dtype).view(np.uint8)
    if tid == fmt.T_DELTA:
        y = x.copy()
        if arg < x.size:
            y[arg:] = x[arg:] - x[:-arg]
        return y
    if tid == fmt.T_SPLIT:
        return np.ascontiguousarray(x.reshape(-1, arg).T).reshape(-1)
    return np.ascontiguousarray(x.reshape(arg, -1).T).reshape(-1)


def inverse(tid: int, arg: int, y: np.ndarray) -> np.ndarray:
    """Undo transform ``tid`` on the uint8 array ``y``."""
    check_transform(tid, arg, y.size)
    if tid == fmt.T_ZIGZAG:
        u = y.view(_UINT[arg])
        return ((u >> 1) ^ (np.zeros_like(u) - (u & 1))).astype(u.dtype).view(np.uint8)
    if tid == fmt.T_DELTA:
        if arg >= y.size:
            return y.copy()
        rows = -(-y.size // arg)
        padded = np.zeros(rows * arg, dtype=np.uint8)
        padded[:y.size] = y
        return np.cumsum(padded.reshape(rows, arg), axis=0, dtype=np.uint8).reshape(-1)[:y.size]
    if tid == fmt.T_SPLIT:
        return np.ascontiguousarray(y.reshape(arg, -1).T).reshape(-1)
    return np.ascontiguousarray(y.reshape(-1, arg).T).reshape(-1)
