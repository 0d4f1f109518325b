"""Seeded value noise: a periodic random tile sampled bilinearly, in float32.

Textures are sampled in world units (metres on the road, on a facade), so they
move with what they are painted on; callers fade fine octaves out where a
pixel covers more than a texel, which keeps distant surfaces from shimmering.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32


class Noise:
    """A ``size`` x ``size`` periodic tile of smoothed Gaussian noise, unit variance, mean 0."""

    def __init__(self, rng: np.random.Generator, size: int = 256):
        if size & (size - 1):
            raise ValueError("noise tile size must be a power of two")
        tile = rng.standard_normal((size, size))
        for axis in (0, 1):   # a [1, 2, 1] blur takes the edge off the white noise
            tile = (np.roll(tile, 1, axis) + 2 * tile + np.roll(tile, -1, axis)) / 4
        tile = (tile - tile.mean()) / tile.std()
        self.size = size
        self.flat = tile.astype(F32).ravel()

    def sample(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Bilinear sample at texel coordinates (u along rows, v along columns), wrapping."""
        u = np.asarray(u, dtype=F32)
        v = np.asarray(v, dtype=F32)
        fu, fv = np.floor(u), np.floor(v)
        wu, wv = u - fu, v - fv
        mask = self.size - 1
        i0 = fu.astype(np.int32) & mask
        j0 = fv.astype(np.int32) & mask
        i1 = (i0 + 1) & mask
        j1 = (j0 + 1) & mask
        i0 *= self.size
        i1 *= self.size
        take = self.flat.take
        t00, t01, t10, t11 = take(i0 + j0), take(i0 + j1), take(i1 + j0), take(i1 + j1)
        top = t00 + (t01 - t00) * wv
        bottom = t10 + (t11 - t10) * wv
        return top + (bottom - top) * wu

    def nearest(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Nearest-texel sample (cheaper; for grain that is faded out with distance anyway)."""
        mask = self.size - 1
        i = np.floor(np.asarray(u, dtype=F32)).astype(np.int32) & mask
        j = np.floor(np.asarray(v, dtype=F32)).astype(np.int32) & mask
        return self.flat.take(i * self.size + j)


def fade(footprint: np.ndarray, cell: float) -> np.ndarray:
    """Weight of a noise octave of texel ``cell`` metres where a pixel covers ``footprint`` metres."""
    return np.clip(F32(1.5) - footprint * F32(1.0 / cell), F32(0), F32(1))
