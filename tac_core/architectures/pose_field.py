"""The pose-field sidecar: per pair, a coarse colour field added to the first frame only.

    codes (P, 3, GRID_H, GRID_W) int8, stored raw --x STEP--> grey levels on a 3 x 4 grid
      --bilinear up (half-pixel centres, edges clamped)--> (P, 3, h, w) at the renderer's size
    rendered pairs (P, 2, 3, h, w): frame 0 + the field, frame 1 untouched
      --> the camera chain as before (bicubic up, clamp, round)

PoseNet sees both frames of a pair, SegNet only the second, so the field moves PoseNet's
outputs and leaves SegNet's alone. An encoder fits the codes through the frozen PoseNet
(``tac_torch.pose_field``). A renderer's archive MAY hold it as the tensor ``pose_field``;
absent means all zero, and pairs whose codes are all zero render exactly as without it.
"""

from __future__ import annotations

import numpy as np

from tac_core.errors import InputError

NAME = "pose_field"
STEP = 1.0                      # grey levels per code
CODE_RANGE = (-127, 127)
CHANNELS = 3
GRID = (3, 4)                   # rows, columns: PoseNet-sized cells over the whole frame


def shape(pairs: int) -> tuple[int, int, int, int]:
    """The sidecar's tensor shape for ``pairs`` pairs."""
    return (pairs, CHANNELS, *GRID)


def check_codes(codes: np.ndarray, pairs: int) -> np.ndarray:
    """``codes`` as int8 ``(pairs, 3, 3, 4)``; ``InputError`` naming what does not fit."""
    codes = np.asarray(codes)
    if codes.shape != shape(pairs):
        raise InputError(f"{NAME} must have shape {shape(pairs)}, got {codes.shape}")
    if codes.size and (codes.min() < CODE_RANGE[0] or codes.max() > CODE_RANGE[1]):
        raise InputError(f"{NAME} codes must lie in {CODE_RANGE[0]}..{CODE_RANGE[1]}")
    return codes.astype(np.int8)
