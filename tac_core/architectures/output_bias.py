"""The output-bias sidecar: per pair, per frame, per colour channel, a small offset added to a
renderer's output (0..255 scale, before the upsampling to the camera size).

    codes (P, 2, 3) int8, stored raw --x STEP--> offsets in grey levels
    rendered pairs (P, 2, 3, h, w) + offsets[..., None, None] --> the camera chain as before

A renderer's archive MAY hold it as the tensor ``output_bias``; absent means all zero. Pairs whose
codes are all zero render exactly as without the sidecar.
"""

from __future__ import annotations

import numpy as np

from tac_core.errors import InputError

NAME = "output_bias"
STEP = 0.5                      # grey levels per code
CODE_RANGE = (-127, 127)
FRAMES, CHANNELS = 2, 3


def check_codes(codes: np.ndarray, pairs: int) -> np.ndarray:
    """``codes`` as int8 ``(pairs, 2, 3)``; ``InputError`` naming what does not fit."""
    codes = np.asarray(codes)
    if codes.shape != (pairs, FRAMES, CHANNELS):
        raise InputError(f"{NAME} must have shape ({pairs}, {FRAMES}, {CHANNELS}), got {codes.shape}")
    if codes.size and (codes.min() < CODE_RANGE[0] or codes.max() > CODE_RANGE[1]):
        raise InputError(f"{NAME} codes must lie in {CODE_RANGE[0]}..{CODE_RANGE[1]}")
    return codes.astype(np.int8)
