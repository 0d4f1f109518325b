"""The differentiable contest chain: exact forward, straight-through gradients, cached targets."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tac_core.errors import InputError  # noqa: E402
from tac_torch.chain import (ContestChain, Targets, as_pairs, camera_frames, camera_pairs_uint8,  # noqa: E402
                             pair_targets, round_ste, targets_key)
from tac_torch.renderers import HnervPair, init_latents, make_spec  # noqa: E402
from tac_torch.scorers import load_scorers  # noqa: E402

TINY = make_spec(stages=2, out_h=24, out_w=32, width_0=4, width_1=6, width_2=6, latent_dim=4)


@pytest.fixture(scope="module")
def scorers():
    return load_scorers("stand-in", seed=0)


def test_round_ste_rounds_half_to_even_and_passes_gradients():
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, 3.2, 254.7], requires_grad=True)
    y = round_ste(x)
    assert y.tolist() == [0.0, 2.0, 2.0, -0.0, 3.0, 255.0]
    (y * torch.arange(6.0)).sum().backward()
    assert torch.equal(x.grad, torch.arange(6.0))


def test_camera_frames_are_the_uint8_frames():
    frames = torch.rand(1, 2, 3, 24, 32) * 300 - 20           # overshoots both ends
    cam = camera_frames(frames, (50, 70))
    assert cam.shape == (1, 2, 3, 50, 70)
    assert float(cam.min()) >= 0 and float(cam.max()) <= 255 and torch.equal(cam, cam.round())
    u8 = camera_pairs_uint8(frames, (50, 70))
    assert u8.shape == (1, 2, 50, 70, 3) and torch.equal(u8.permute(0, 1, 4, 2, 3).float(), cam)
    with pytest.raises(InputError):
        camera_frames(torch.zeros(1, 3, 3, 8, 8))


def test_chain_forward_equals_the_evaluator_and_trains_the_renderer_only(scorers):
    net = HnervPair(TINY, seed=0)
    chain = ContestChain(scorers)                            # full camera size, as the contest
    out = chain(net(init_latents(1, TINY, seed=2) * 20))
    pairs = out.pairs_uint8()
    assert pairs.shape == (1, 2, 874, 1164, 3) and pairs.dtype == torch.uint8
    with torch.no_grad():
        assert torch.equal(pairs, camera_pairs_uint8(net(init_latents(1, TINY, seed=2) * 20)))
    exact = scorers.outputs(pairs)
    assert np.array_equal(out.seg_logits.argmax(1).to(torch.uint8).numpy(), exact["seg"])
    np.testing.assert_allclose(out.pose.detach().numpy(), exact["pose"], rtol=0, atol=1e-5)
    (out.seg_logits.mean() + out.pose.sum()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    assert net.head.weight.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in scorers.segnet.parameters())


def test_targets_are_the_exact_outputs_and_cached(scorers, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(2, 40, 60, 3), dtype=np.uint8)
    first = pair_targets(frames, scorers, cache_dir=tmp_path)
    exact = scorers.outputs(frames.reshape(1, 2, 40, 60, 3))
    assert np.array_equal(first.seg, exact["seg"]) and np.array_equal(first.pose, exact["pose"])
    assert (tmp_path / f"{targets_key(as_pairs(frames), scorers)}.npz").exists()

    def refuse(_pairs):
        raise AssertionError("targets were recomputed, not read from the cache")
    monkeypatch.setattr(scorers, "outputs", refuse)
    again = pair_targets(frames, scorers, cache_dir=tmp_path)
    assert np.array_equal(again.seg, first.seg) and np.array_equal(again.pose, first.pose)
    seg, pose = again.batch(slice(0, 1))
    assert seg.dtype == torch.int64 and pose.shape == (1, 12)
    other = frames.copy()
    other[0, 0, 0, 0] ^= 1
    assert targets_key(as_pairs(other), scorers) != targets_key(as_pairs(frames), scorers)


def test_bad_frames_are_typed_errors():
    for bad in (np.zeros((1, 8, 8, 3), np.uint8), np.zeros((2, 8, 8, 3), np.float32), np.zeros((2, 8, 8), np.uint8)):
        with pytest.raises(InputError):
            as_pairs(bad)


def test_as_pairs_leaves_out_a_last_unpaired_frame_and_needs_one_pair():
    frames = np.arange(5 * 2 * 3 * 3, dtype=np.uint8).reshape(5, 2, 3, 3)
    pairs = as_pairs(frames)
    assert pairs.shape == (2, 2, 2, 3, 3) and pairs[1, 1, 0, 0, 0] == frames[3, 0, 0, 0]
    with pytest.raises(InputError, match="at least 2 frames"):
        as_pairs(frames[:1])


def test_an_odd_frame_count_exports_one_more_latent_for_the_unpaired_frame():
    from tac_torch.train import Candidate, candidate_model

    spec = make_spec(stages=2, out_h=8, out_w=8, latent_dim=3, width_0=2, width_1=2, width_2=2)
    decoder = HnervPair(spec, seed=0).state_dict()
    latents = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    _, odd = candidate_model(spec, Candidate("x", decoder, latents), frames=5)
    _, even = candidate_model(spec, Candidate("x", decoder, latents), frames=4)
    assert odd.shape == (3, 3) and torch.equal(odd[2], latents[1])
    assert torch.equal(even, latents)


# --- the linear camera path ------------------------------------------------------------

def test_round_trip_matrices_are_the_two_resamplings_composed():
    import torch.nn.functional as F

    from tac_torch.chain import linear_round_trip, round_trip_matrix

    a = round_trip_matrix(24, 50, 384)
    assert a.shape == (384, 24) and torch.allclose(a.sum(1), torch.ones(384), atol=1e-6)
    x = torch.rand(1, 2, 3, 24, 32, dtype=torch.float64) * 255
    up = F.interpolate(x.flatten(0, 1), size=(50, 70), mode="bicubic", align_corners=False)
    want = F.interpolate(up, size=(384, 512), mode="bilinear", align_corners=False).view(1, 2, 3, 384, 512)
    got = linear_round_trip(x.float(), (50, 70))
    assert got.shape == want.shape and torch.allclose(got.double(), want, atol=1e-3)
    # at camera size there is no bicubic step: the matrix is the scorers' bilinear resize alone
    same = round_trip_matrix(50, 50, 384)
    eye = torch.eye(50, dtype=torch.float64).view(50, 1, 50, 1)
    assert torch.allclose(same.double(), F.interpolate(eye, size=(384, 1), mode="bilinear",
                                                       align_corners=False).view(50, 384).T, atol=1e-7)


def test_the_linear_path_sees_nearly_what_the_exact_path_sees():
    proxy = load_scorers("proxy")
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 96), torch.linspace(0, 1, 128), indexing="ij")
    frame = torch.stack([60 + 120 * xx, 40 + 150 * yy, 200 - 90 * xx * yy])        # smooth, inside 0..255
    frames = torch.stack([frame, frame.roll(3, dims=-1)])[None].requires_grad_(True)
    exact = ContestChain(proxy, size=(200, 266))(frames)
    fast = ContestChain(proxy, size=(200, 266), path="linear")(frames)
    assert fast.frames is None and exact.frames is not None
    agree = (fast.seg_logits.argmax(1) == exact.seg_logits.argmax(1)).float().mean()
    assert agree > 0.99
    assert torch.allclose(fast.pose[:, :6], exact.pose[:, :6], atol=0.05)
    (fast.seg_logits.mean() + fast.pose.sum()).backward()
    assert frames.grad is not None and frames.grad.abs().sum() > 0
    with pytest.raises(InputError, match="linear camera path"):
        fast.pairs_uint8()
    with pytest.raises(InputError, match="camera path"):
        ContestChain(proxy, path="bilinear")


def test_target_tensors_give_the_same_batches_as_the_targets():
    rng = np.random.default_rng(0)
    targets = Targets(seg=rng.integers(0, 5, (6, 384, 512), dtype=np.uint8),
                      pose=rng.standard_normal((6, 12)).astype(np.float32))
    index = torch.tensor([4, 1, 1])
    seg, pose = targets.to("cpu").batch(index)
    seg_ref, pose_ref = targets.batch(index.numpy())
    assert seg.dtype == torch.int64 and torch.equal(seg, seg_ref) and torch.equal(pose, pose_ref)
