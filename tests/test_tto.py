"""Test-time optimisation and the output-bias sidecar: they never make the measured score worse,
they improve a model that has room to improve, and what they keep is what the archive inflates."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_train import CAMERA, SPEC, known_pairs, tiny_scorers  # noqa: E402

from tac_core.errors import InputError  # noqa: E402
from tac_torch.archive_io import read_model  # noqa: E402
from tac_torch.chain import pair_targets  # noqa: E402
from tac_torch.export import LATENT_SPEC, ModelFile, build_archive, load_model_file, save_model_file  # noqa: E402
from tac_torch.quant import quantize_values  # noqa: E402
from tac_torch.refine import (LatentCodes, archive_view, hnerv_bias_codes, search_output_bias,  # noqa: E402
                              tto_latents)
from tac_torch.renderers import HnervPair, init_latents, make_spec, render_uint8  # noqa: E402
from tac_torch.tto import PairScores, TTOSettings, exact_pair_scores, optimise_codes, pair_changes  # noqa: E402

PAIRS = 6


@pytest.fixture(scope="module")
def setup():
    """A clip from a seeded decoder, and a model whose latents are those of another seed (room to improve)."""
    scorers = tiny_scorers(0)
    pairs = known_pairs(PAIRS)
    targets = pair_targets(pairs, scorers, use_cache=False)
    spec = make_spec(**SPEC)
    model = HnervPair(spec, seed=5).eval()
    latents = init_latents(PAIRS, spec, seed=9) * 20
    return scorers, targets, ModelFile(model, latents, 2 * PAIRS)


def measured(mf: ModelFile, targets, scorers) -> PairScores:
    """Exact per-pair scores of what the archive of ``mf`` inflates to."""
    back = read_model(build_archive(mf.model, mf.latents, mf.frames, output_bias=mf.output_bias))
    pose, seg = [], []
    for pairs in render_uint8(back.model, back.latents, "cpu", CAMERA, output_bias=back.output_bias):
        out = scorers.outputs(pairs)
        pose.append(out["pose"])
        seg.append(out["seg"])
    d_pose, d_seg = scorers.distortion({"pose": targets.pose, "seg": targets.seg},
                                       {"pose": np.concatenate(pose), "seg": np.concatenate(seg)})
    return PairScores(d_seg.astype(np.float64), d_pose.astype(np.float64))


def test_latent_tto_improves_and_the_archive_holds_what_was_measured(setup):
    scorers, targets, mf = setup
    new, result = tto_latents(mf, targets, scorers, TTOSettings(max_epochs=3, lr=3.0, batch_pairs=2),
                              camera=CAMERA, show_progress=False)
    assert result.changed_pairs > 0 and result.gain > 0
    before, after = measured(mf, targets, scorers), measured(new, targets, scorers)
    assert after.score() < before.score()
    assert after.score() == pytest.approx(result.after.score(), rel=1e-6)     # measured = shipped
    assert torch.equal(quantize_values(new.latents, LATENT_SPEC), new.latents)
    assert torch.equal(new.model.state_dict()["head.weight"], mf.model.state_dict()["head.weight"])


def test_tto_keeps_the_old_codes_when_nothing_helps(setup):
    scorers, targets, mf = setup
    net, latents, scale = archive_view(mf)
    renderer = LatentCodes(net, torch.zeros(PAIRS, 2, 3, dtype=torch.int8), CAMERA)
    # a learning rate so large every step overshoots to the code limits: whatever it finds is
    # accepted only pair by pair where the exact score falls, never as a whole
    result = optimise_codes(renderer, latents, scale, targets, scorers,
                            TTOSettings(max_epochs=1, lr=500.0, batch_pairs=3), show_progress=False)
    assert result.after.score() <= result.before.score()
    unchanged = (result.codes == latents).all(dim=1)
    assert int((~unchanged).sum()) == result.changed_pairs
    again = exact_pair_scores(renderer, result.codes, targets, scorers)
    assert again.score() == pytest.approx(result.after.score(), rel=1e-9)


def test_zero_epochs_change_nothing(setup):
    scorers, targets, mf = setup
    new, result = tto_latents(mf, targets, scorers, TTOSettings(max_epochs=0), camera=CAMERA,
                              show_progress=False)
    assert result.changed_pairs == 0 and result.epochs == 0
    assert torch.equal(new.latents, quantize_values(mf.latents, LATENT_SPEC))


def test_pair_changes_accept_only_what_lowers_the_score():
    old = PairScores(np.array([0.1, 0.2]), np.array([0.5, 0.5]))
    new = PairScores(np.array([0.05, 0.2]), np.array([0.5, 0.6]))
    d = pair_changes(old, new)
    assert d[0] < 0 < d[1]
    both = PairScores(np.array([0.05, 0.2]), np.array([0.5, 0.5]))
    assert both.score() < old.score()


def test_output_bias_sidecar_is_kept_only_when_it_pays_for_its_bytes(setup):
    scorers, targets, mf = setup
    # a generous byte budget: the sidecar should be worth keeping on this mismatched model
    kept, res = search_output_bias(mf, targets, scorers, TTOSettings(max_epochs=2, lr=4.0, batch_pairs=2),
                                   original_bytes=1e9, camera=CAMERA, show_progress=False)
    if res.kept:
        assert kept.output_bias is not None and res.score_after < res.score_before
        back = read_model(build_archive(kept.model, kept.latents, kept.frames, output_bias=kept.output_bias))
        assert torch.equal(back.output_bias, kept.output_bias)
        assert measured(kept, targets, scorers).score(res.bytes_after / 1e9) == pytest.approx(res.score_after)
    else:
        assert kept is mf
    # a tiny original: every byte costs more than any distortion gain, so nothing is kept
    dropped, res2 = search_output_bias(mf, targets, scorers, TTOSettings(max_epochs=1, lr=4.0, batch_pairs=2),
                                       original_bytes=1e3, camera=CAMERA, show_progress=False)
    assert not res2.kept and dropped is mf and dropped.output_bias is None


def test_bias_renderer_matches_the_runtime_path(setup):
    scorers, targets, mf = setup
    net, latents, _ = archive_view(mf)
    codes = torch.zeros(PAIRS, 6)
    codes[1, 0], codes[3, 5] = 7, -12
    frames = torch.cat(list(hnerv_bias_codes(net, latents, CAMERA).uint8(codes)))
    bias = codes.to(torch.int8).view(PAIRS, 2, 3)
    direct = torch.cat(list(render_uint8(net, latents, "cpu", CAMERA, output_bias=bias)))
    plain = torch.cat(list(render_uint8(net, latents, "cpu", CAMERA)))
    assert torch.equal(frames, direct)
    assert torch.equal(frames[0], plain[0]) and not torch.equal(frames[1], plain[1])


def test_model_file_keeps_the_sidecar(tmp_path, setup):
    _, _, mf = setup
    bias = torch.zeros(PAIRS, 2, 3, dtype=torch.int8)
    bias[2, 1, 0] = 5
    path = save_model_file(tmp_path / "m.pt", mf.model, mf.latents, mf.frames, output_bias=bias)
    assert torch.equal(load_model_file(path).output_bias, bias)
    with pytest.raises(InputError, match="output_bias"):
        save_model_file(tmp_path / "bad.pt", mf.model, mf.latents, mf.frames, output_bias=bias[:2])
