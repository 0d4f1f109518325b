"""Which frame pairs a training step sees: a function of (seed, step) only, so a resumed run
samples exactly what an uninterrupted one would.

    "random": each step draws its batch afresh (a prefix of a permutation seeded by seed and step);
              over a run some pairs come up far more often than others
    "epochs": the pairs are dealt out in shuffled epochs (one permutation per epoch, seeded by seed
              and the epoch), so every pair is seen once before any pair is seen again
"""

from __future__ import annotations

import torch

from tac_core.errors import InputError

SAMPLINGS = ("random", "epochs")
_EPOCH_OFFSET = 7_777_777          # moves the epoch permutations' seeds away from the per-step ones


def _permutation(seed: int, n_pairs: int) -> torch.Tensor:
    return torch.randperm(n_pairs, generator=torch.Generator().manual_seed(seed))


def sampled_pairs(seed: int, step: int, n_pairs: int, batch: int, sampling: str = "random") -> torch.Tensor:
    """The ``batch`` pair indices (int64) trained at ``step``, as ``sampling`` deals them.

    "epochs" takes positions ``step * batch`` .. ``step * batch + batch - 1`` of the sequence of
    epoch permutations, so a batch may end one epoch and start the next, and then hold a pair
    twice (once from each epoch)."""
    if sampling == "random":
        return _permutation(seed * 1_000_003 + step, n_pairs)[:batch]
    if sampling != "epochs":
        raise InputError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {sampling!r}")
    start = step * batch
    out, epochs = [], {}
    for position in range(start, start + batch):
        epoch, i = divmod(position, n_pairs)
        if epoch not in epochs:
            epochs[epoch] = _permutation(seed * 1_000_003 + _EPOCH_OFFSET + epoch, n_pairs)
        out.append(epochs[epoch][i])
    return torch.stack(out)
