"""Pair sampling: a function of (seed, step); shuffled epochs deal every pair once per epoch."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from tac_core.errors import InputError  # noqa: E402
from tac_torch.sampling import SAMPLINGS, sampled_pairs  # noqa: E402


def _dealt(seed: int, steps: int, n_pairs: int, batch: int, sampling: str) -> list[int]:
    return [int(p) for s in range(steps) for p in sampled_pairs(seed, s, n_pairs, batch, sampling)]


def test_random_sampling_is_the_per_step_permutation_prefix():
    # the draws older checkpoints were trained with: resuming one must sample as it did
    for seed, step in ((0, 0), (3, 17), (12, 905)):
        gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
        assert torch.equal(sampled_pairs(seed, step, 100, 4), torch.randperm(100, generator=gen)[:4])


@pytest.mark.parametrize("batch", [1, 3, 4, 10])
def test_epochs_deal_every_pair_once_per_epoch(batch):
    n_pairs, epochs = 10, 4
    dealt = _dealt(seed=5, steps=epochs * n_pairs // batch + 1, n_pairs=n_pairs, batch=batch, sampling="epochs")
    for e in range(epochs):
        assert sorted(dealt[e * n_pairs:(e + 1) * n_pairs]) == list(range(n_pairs))
    orders = {tuple(dealt[e * n_pairs:(e + 1) * n_pairs]) for e in range(epochs)}
    assert len(orders) > 1                                   # each epoch is shuffled anew


def test_a_batch_may_straddle_two_epochs_and_batches_larger_than_the_clip_work():
    across = sampled_pairs(1, 2, 10, 4, "epochs")             # positions 8..11: two of epoch 0, two of epoch 1
    assert across.dtype == torch.int64 and across.shape == (4,)
    assert [int(p) for p in across[:2]] == _dealt(1, 10, 10, 1, "epochs")[8:10]
    assert [int(p) for p in across[2:]] == _dealt(1, 12, 10, 1, "epochs")[10:12]
    big = sampled_pairs(0, 0, 3, 7, "epochs")
    assert sorted(big[:3].tolist()) == [0, 1, 2] and sorted(big[3:6].tolist()) == [0, 1, 2]


def test_random_draws_repeat_some_pairs_where_epochs_spread_them_evenly():
    n_pairs, steps = 20, 60
    for sampling, spread in (("random", lambda c: max(c) - min(c) >= 3), ("epochs", lambda c: max(c) == min(c) == 3)):
        counts = [0] * n_pairs
        for p in _dealt(2, steps, n_pairs, 1, sampling):
            counts[p] += 1
        assert spread(counts), (sampling, counts)


def test_sampling_is_deterministic_per_seed_and_checks_its_mode():
    assert SAMPLINGS == ("random", "epochs")
    for sampling in SAMPLINGS:
        assert _dealt(4, 12, 9, 2, sampling) == _dealt(4, 12, 9, 2, sampling)
        assert _dealt(4, 12, 9, 2, sampling) != _dealt(5, 12, 9, 2, sampling)
    with pytest.raises(InputError, match="sampling must be one of random, epochs"):
        sampled_pairs(0, 0, 5, 1, "stratified")
