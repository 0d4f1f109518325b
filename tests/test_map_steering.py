"""Class-map steering: candidates are neighbouring classes at boundaries, windows sum exactly, and
rounds keep only flips that lower SegNet's errors around them."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tac_core.errors import InputError  # noqa: E402
from tac_torch import map_steering  # noqa: E402
from tac_torch.map_steering import cheapest_flips, margins_from_leads, steer_maps, window_sum  # noqa: E402


def test_window_sum_matches_a_direct_sum():
    a = np.random.default_rng(0).integers(0, 2, (2, 9, 11))
    got = window_sum(a, 2)
    pad = np.pad(a, ((0, 0), (2, 2), (2, 2)))
    want = sum(pad[:, dy:dy + 9, dx:dx + 11] for dy in range(5) for dx in range(5))
    assert got.shape == a.shape and np.array_equal(got, want)
    assert np.array_equal(window_sum(a, 0), a)
    with pytest.raises(InputError):
        window_sum(a, -1)


def test_cheapest_flips_fill_notches_with_a_class_two_neighbours_hold():
    maps = np.zeros((1, 5, 6), np.uint8)
    maps[0, 2:, 2:] = 2                                   # a block of class 2 in the lower right
    grad = np.zeros((1, 3, 5, 6), np.float32)
    grad[0, 2] = -1.0                                     # class 2 is cheaper everywhere
    grad[0, 1] = -5.0                                     # class 1 cheaper still, but no neighbour has it
    cost, cls = cheapest_flips(maps, grad)
    offered = np.isfinite(cost[0])
    # only pixels with two class-2 neighbours may turn 2 (none here: the block's corner is convex) ...
    assert not offered[maps[0] == 0].any()
    # ... and the block's own pixels may turn 0 where two neighbours are 0: its outer corner only
    assert offered.sum() == 1 and offered[2, 2] and cls[0, 2, 2] == 0 and cost[0, 2, 2] == 1.0
    maps[0, 1, 3] = 2                                     # a notch at (2, 3)? no: a spike above the block
    cost, cls = cheapest_flips(maps, grad)
    assert np.isfinite(cost[0, 1, 2]) and cls[0, 1, 2] == 2 and cost[0, 1, 2] == -1.0   # the notch beside it fills


class _Painter(torch.nn.Module):
    """A 'renderer' whose second frame is its class map painted in fixed colours, shifted one pixel
    right: steering should learn to shift the maps' (diagonal, so notched) boundaries back."""

    spec = {"classes": 2}

    def __init__(self):
        super().__init__()
        self.colours = torch.nn.Parameter(torch.tensor([[20.0, 20.0, 20.0], [230.0, 230.0, 230.0]]))

    def onehot(self, maps):
        return torch.nn.functional.one_hot(maps.long(), 2).permute(0, 3, 1, 2).float()

    def second_frame(self, onehot):
        shifted = torch.cat([onehot[..., :1], onehot[..., :-1]], dim=-1)
        return torch.einsum("bkhw,kc->bchw", shifted, self.colours)


class _Threshold(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(10.0))

    def forward(self, x):
        grey = x.mean(1, keepdim=True) - 125.0
        return torch.cat([-grey, grey], 1) / self.scale


def test_steering_undoes_a_renderer_that_paints_a_pixel_off():
    from tac_torch.scorers import TorchScorers

    scorers = TorchScorers("stand-in", _Threshold(), torch.nn.Identity(), {"t": "0"}, False, "cpu")
    yy, xx = np.mgrid[0:384, 0:512]
    target = np.stack([xx - yy > 60, xx + yy > 500]).astype(np.uint8)     # staircase boundaries
    net = _Painter()
    maps, res = steer_maps(net, target.copy(), target, scorers, rounds=3, flips=2000, window=2,
                           camera=(384, 512), show_progress=False)
    assert res.errors_before > 0.001 and res.errors_after < res.errors_before / 4
    assert res.flipped == int((maps != target).sum()) > 0
    assert net.colours.requires_grad                        # left as it was found
    assert scorers.segnet.scale.requires_grad and scorers.segnet.scale.grad is None   # steered on a copy
    with pytest.raises(InputError, match="seg targets"):
        steer_maps(net, target, target[:0], scorers, rounds=1, flips=1)
    same, none = steer_maps(net, target, target, scorers, rounds=0, flips=1, show_progress=False)
    assert np.array_equal(same, target) and none.flipped == 0


def test_margins_from_leads_clip_the_originals_lead_between_the_floor_and_two():
    leads = np.array([[0.0, 0.3, 0.7], [1.9, 2.5, 40.0]], np.float16)
    out = margins_from_leads(leads, 0.5)
    assert out.dtype == np.float32 and np.allclose(out, [[0.5, 0.5, 0.7], [1.9, 2.0, 2.0]], atol=1e-3)
    for floor in (0.0, -1.0, 2.5):
        with pytest.raises(InputError, match="margin floor"):
            margins_from_leads(leads, floor)


def test_steering_with_per_pixel_margins():
    from tac_torch.scorers import TorchScorers

    scorers = TorchScorers("stand-in", _Threshold(), torch.nn.Identity(), {"t": "0"}, False, "cpu")
    yy, xx = np.mgrid[0:384, 0:512]
    target = np.stack([xx - yy > 60, xx + yy > 500]).astype(np.uint8)
    net = _Painter()
    kw = dict(rounds=2, flips=2000, window=1, camera=(384, 512), show_progress=False)
    plain, res = steer_maps(net, target.copy(), target, scorers, **kw)
    same, _ = steer_maps(net, target.copy(), target, scorers, margins=np.full(target.shape, 2.0, np.float32), **kw)
    assert np.array_equal(plain, same)                       # a margin of 2 everywhere is the default loss
    near = np.full(target.shape, 2.0, np.float32)
    near[:, :, 256:] = 0.25                                 # the right half asks for a small lead only
    _, near_res = steer_maps(net, target.copy(), target, scorers, margins=near, **kw)
    assert near_res.errors_after < near_res.errors_before / 2
    seg = map_steering._Seg(net, scorers, (384, 512), "cpu")     # the margins reach the loss's gradient
    t = torch.from_numpy(target).long()
    g_plain, _ = seg.grad_and_errors(target, t)
    g_near, _ = seg.grad_and_errors(target, t, torch.from_numpy(near))
    assert not np.allclose(g_plain[..., 300:], g_near[..., 300:]) and np.abs(g_plain - g_near).max() > 0
    for bad in (np.full((2, 384, 511), 2.0, np.float32), np.zeros(target.shape, np.float32)):
        with pytest.raises(InputError, match="steering margins"):
            steer_maps(net, target, target, scorers, margins=bad, **kw)
