"""Losses that track the score: seg margin surrogate, sqrt(10 * MSE) pose term, entropy rate term."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tac_core import contract  # noqa: E402
from tac_core.archive import QuantSpec, quantize  # noqa: E402
from tac_core.errors import InputError  # noqa: E402
from tac_torch.chain import ContestChain, camera_pairs_uint8, pair_targets  # noqa: E402
from tac_torch.losses import (LossWeights, RunningMean, pose_term, rate_bits, score_loss,  # noqa: E402
                              seg_disagreement, seg_lead, seg_margin_loss, tensor_bits)
from tac_torch.quant import fake_quantized_params, weight_specs  # noqa: E402
from tac_torch.renderers import HnervPair, init_latents, make_spec  # noqa: E402
from tac_torch.scorers import load_scorers  # noqa: E402


def _logits_with_lead(lead: float, target: int = 2) -> torch.Tensor:
    logits = torch.zeros(1, 5, 4, 4)
    logits[:, target] = lead
    return logits


def test_seg_surrogate_falls_as_the_lead_grows():
    target = torch.full((1, 4, 4), 2)
    values = [float(seg_margin_loss(_logits_with_lead(v), target)) for v in (-3, -1, 0, 0.5, 1, 2, 4, 8)]
    assert all(a > b for a, b in zip(values, values[1:]))
    assert values[-1] < 1e-5                               # a wide lead costs nothing
    assert float(seg_margin_loss(_logits_with_lead(0.0), target)) == pytest.approx(1.0)
    assert float(seg_lead(_logits_with_lead(1.5), target).mean()) == 1.5
    assert float(seg_disagreement(_logits_with_lead(-1.0), target)) == 1.0
    assert float(seg_disagreement(_logits_with_lead(1.0), target)) == 0.0


def test_seg_surrogate_weighs_small_leads_more():
    target = torch.full((1, 4, 4), 2)
    logits = _logits_with_lead(6.0)
    logits[0, 2, 0, 0] = 0.5                               # one pixel close to flipping
    logits.requires_grad_(True)
    seg_margin_loss(logits, target).backward()
    g = logits.grad[0, 2]
    assert g[0, 0] < 0 and abs(float(g[0, 0])) > 100 * abs(float(g[1, 1]))
    plain = LossWeights(boost=0.0)
    with torch.no_grad():
        assert float(seg_margin_loss(logits, target)) > float(seg_margin_loss(logits, target, plain))


def test_seg_surrogate_takes_a_margin_per_pixel():
    target = torch.full((1, 4, 4), 2)
    logits = _logits_with_lead(1.0)
    assert float(seg_margin_loss(logits, target, margin=torch.full((1, 4, 4), 2.0))) == pytest.approx(
        float(seg_margin_loss(logits, target)))
    small = torch.full((1, 4, 4), 2.0)
    small[0, 0, 0] = 0.5                                   # this pixel only asks for a lead of 0.5
    logits.requires_grad_(True)
    seg_margin_loss(logits, target, margin=small).backward()
    g = logits.grad[0, 2]
    assert 0 > float(g[0, 0]) > 0.5 * float(g[1, 1])         # the pixel past its own margin is pushed less
    for bad in (torch.full((1, 4, 3), 2.0), torch.zeros((1, 4, 4))):
        with pytest.raises(InputError, match="per-pixel margins"):
            seg_margin_loss(logits, target, margin=bad)


def test_pose_term_is_sqrt_of_ten_mse():
    gen = torch.Generator().manual_seed(0)
    pose, target = torch.randn(3, 12, generator=gen), torch.randn(3, 12, generator=gen)
    mse = float(((pose[:, :6] - target[:, :6]) ** 2).mean())
    assert float(pose_term(pose, target)) == pytest.approx(math.sqrt(10 * mse), rel=1e-6)
    pose.requires_grad_(True)
    pose_term(pose, pose.detach()).backward()             # zero error: finite gradient
    assert torch.isfinite(pose.grad).all()
    with pytest.raises(InputError):
        pose_term(torch.zeros(2, 4), torch.zeros(2, 4))


def test_linearised_pose_term_weighs_every_pair_alike():
    """At a reference MSE the tangent equals the sqrt; its gradient is the same for a close pair
    and a far one, where sqrt of each pair's own MSE pushes the close one hardest."""
    target = torch.zeros(1, 6)
    ref = 0.25
    grads = []
    for err in (0.05, 1.0):                               # a close pair and a far pair
        pose = torch.full((1, 6), err, requires_grad=True)
        term = pose_term(pose, target, reference=ref)
        term.backward()
        grads.append(float(pose.grad[0, 0]) / err)        # d term / d mse, up to the constant 2 / 6
    assert grads[0] == pytest.approx(grads[1], rel=1e-6)
    assert float(pose_term(torch.full((1, 6), math.sqrt(ref)), target, reference=ref)) == \
        pytest.approx(math.sqrt(10 * ref), rel=1e-6)
    own = []
    for err in (0.05, 1.0):
        pose = torch.full((1, 6), err, requires_grad=True)
        pose_term(pose, target).backward()
        own.append(float(pose.grad[0, 0]) / err)
    assert own[0] > 10 * own[1]


def test_running_mean_follows_and_skips_non_finite_values():
    from tac_torch.losses import RunningMean

    m = RunningMean(decay=0.5)
    assert m.value is None
    m.update(4.0)
    m.update(float("nan"))
    m.update(2.0)
    assert m.value == pytest.approx(3.0)


def test_rate_bits_track_the_codes_entropy():
    gen = torch.Generator().manual_seed(1)
    x = torch.distributions.Laplace(0.0, 1.0).sample((64, 64))
    spec = QuantSpec("int8_sym")
    codes = quantize(x.numpy(), spec).codes.ravel()
    _, counts = np.unique(codes, return_counts=True)
    p = counts / counts.sum()
    empirical = float(-(counts * np.log2(p)).sum())
    est = float(tensor_bits(x, spec))
    assert 0.9 * empirical < est < 1.2 * empirical
    assert float(tensor_bits(torch.randn(10, generator=gen), QuantSpec("fp16"))) == 160
    w = x.clone().requires_grad_(True)
    tensor_bits(w, spec).backward()
    assert float((w.grad * w.detach()).sum()) > 0          # shrinking weights saves bits
    with pytest.raises(InputError):
        rate_bits({}, {"w": spec})


@pytest.fixture(scope="module")
def scorers():
    return load_scorers("stand-in", seed=0)


def test_a_few_steps_lower_the_score_loss(scorers, tmp_path):
    """Targets rendered from known latents; a few Adam steps from perturbed ones lower the loss."""
    spec = make_spec(stages=2, out_h=24, out_w=32, width_0=4, width_1=6, width_2=6, latent_dim=4)
    size = (48, 64)                                        # a reduced camera: the scorers resize anyway
    net = HnervPair(spec, seed=0)
    specs = weight_specs(net)
    truth = init_latents(1, spec, seed=0) * 20
    with torch.no_grad():
        frames = torch.func.functional_call(net, fake_quantized_params(net, specs), (truth,))
        pairs = camera_pairs_uint8(frames, size).numpy()
    seg_t, pose_t = pair_targets(pairs, scorers, cache_dir=tmp_path).batch(slice(None))
    latents = torch.nn.Parameter(truth + init_latents(1, spec, seed=1) * 10)
    specs_all = {**specs, "latents": QuantSpec("int8_sym")}
    chain = ContestChain(scorers, size=size)
    opt = torch.optim.Adam([latents], lr=0.1)

    def step():
        params = fake_quantized_params(net, specs)
        out = chain(torch.func.functional_call(net, params, (latents,)))
        return score_loss(out.pose, out.seg_logits, pose_t, seg_t,
                          params={**dict(net.named_parameters()), "latents": latents}, specs=specs_all)
    first = None
    for _ in range(2):
        parts = step()
        opt.zero_grad()
        parts["loss"].backward()
        opt.step()
        first = float(parts["loss"].detach()) if first is None else first
    final = {k: float(v.detach()) for k, v in step().items()}
    assert set(final) >= {"loss", "seg", "pose", "rate", "seg_disagreement", "pose_mse", "bytes"}
    assert final["loss"] < first
    assert final["loss"] == pytest.approx(final["seg"] + final["pose"] + final["rate"], rel=1e-5)
    assert final["bytes"] > 0 and final["rate"] == pytest.approx(
        contract.RATE_WEIGHT * final["bytes"] / contract.CONTEST_VIDEO_BYTES, rel=1e-5)


def test_rate_bits_is_the_sum_of_tensor_bits_with_its_gradient():
    gen = torch.Generator().manual_seed(3)
    params = {"a": torch.randn(6, 5, 3, generator=gen), "b": torch.randn(40, generator=gen),
              "c": torch.randn(4, 7, generator=gen), "d": torch.randn(3, generator=gen),
              "e": torch.randn(8, generator=gen), "f": torch.zeros(5, 2), "g": torch.randn(9, 2, generator=gen)}
    specs = {"a": QuantSpec("int8_asym", axis=1), "b": QuantSpec("int4_asym"), "c": QuantSpec("int8_sym", axis=0),
             "d": QuantSpec("fp16"), "e": QuantSpec("raw"), "f": QuantSpec("int4_sym", axis=0),
             "g": QuantSpec("int8_sym", axis=0)}
    for p in params.values():
        p.requires_grad_(True)
    together = rate_bits(params, specs)
    apart = sum(tensor_bits(params[name], spec) for name, spec in specs.items())
    assert float(together.detach()) == pytest.approx(float(apart.detach()), rel=1e-6)
    grads = torch.autograd.grad(together, list(params.values()), allow_unused=True)
    expected = torch.autograd.grad(apart, list(params.values()), allow_unused=True)
    for g, e in zip(grads, expected):
        if e is None:
            assert g is None or not g.any()
        else:
            torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-6)


def test_running_mean_on_tensors_matches_floats_and_skips_non_finite():
    floats = RunningMean(decay=0.5)
    for x in (4.0, 2.0, float("nan"), 6.0):
        floats.update(x)
    t = RunningMean(decay=0.5, value=torch.tensor(4.0))
    for x in (2.0, float("nan"), 6.0):
        t.update(torch.tensor(x))
    assert isinstance(t.value, torch.Tensor)
    assert t.as_float() == pytest.approx(floats.value)


def test_pose_term_takes_a_tensor_reference():
    gen = torch.Generator().manual_seed(0)
    pose, target = torch.randn(4, 12, generator=gen), torch.randn(4, 12, generator=gen)
    as_float = pose_term(pose, target, reference=0.3)
    as_tensor = pose_term(pose, target, reference=torch.tensor(0.3))
    assert float(as_tensor) == pytest.approx(float(as_float), rel=1e-6)
    # a reference that is not finite yet linearises at the batch's own MSE: sqrt(10 * MSE)
    unset = pose_term(pose, target, reference=torch.tensor(float("nan")))
    assert float(unset) == pytest.approx(float(pose_term(pose, target)), rel=1e-6)
