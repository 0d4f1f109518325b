"""Test-time optimisation, the output-bias sidecar and the pose field: they never make the measured
score worse, they improve a model that has room to improve, and what they keep is what the archive
inflates."""

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
from tac_torch.pose_field import FieldSettings  # noqa: E402
from tac_torch.refine import (LatentCodes, archive_bytes, archive_view, fit_field, hnerv_bias_codes,  # noqa: E402
                              search_output_bias, tto_latents)
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
    back = read_model(mf.archive())
    pose, seg = [], []
    for pairs in render_uint8(back.model, back.latents, "cpu", CAMERA, output_bias=back.output_bias,
                              pose_field=back.pose_field):
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
    field = torch.zeros(PAIRS, 3, 3, 4, dtype=torch.int8)
    field[3, 0, 1, 2] = 20                             # a model that has a pose field renders with it
    with_field = torch.cat(list(hnerv_bias_codes(net, latents, CAMERA, field=field).uint8(codes)))
    assert torch.equal(with_field, torch.cat(list(render_uint8(net, latents, "cpu", CAMERA, output_bias=bias,
                                                               pose_field=field))))
    assert not torch.equal(with_field[3, 0], frames[3, 0]) and torch.equal(with_field[3, 1], frames[3, 1])
    renderer = LatentCodes(net, bias, CAMERA, field=field)
    index = torch.tensor([3])
    assert torch.allclose(renderer.pairs(latents[index], index),           # the sidecars, summed in either order
                          hnerv_bias_codes(net, latents, CAMERA, field=field).pairs(codes[index], index), atol=1e-4)


def test_the_pose_field_pays_for_its_bytes_leaves_seg_alone_and_inflates_as_measured(setup):
    scorers, targets, mf = setup
    bias = torch.zeros(PAIRS, 2, 3, dtype=torch.int8)
    bias[1, 0] = torch.tensor([9, -6, 4], dtype=torch.int8)
    mf = mf._replace(output_bias=bias)                   # the field is fitted on top of the output bias
    settings = FieldSettings(iterations=12, lr=2.0, batch_pairs=4)
    new, res = fit_field(mf, targets, scorers, settings, original_bytes=1e9, camera=CAMERA, show_progress=False)
    assert res.kept and res.pose_after < res.pose_before and res.score_after < res.score_before
    assert res.pairs_with_field == int(new.pose_field.flatten(1).any(1).sum()) > 0
    assert torch.equal(new.output_bias, bias) and torch.equal(new.latents, mf.latents)
    assert res.bytes_after == archive_bytes(new) > res.bytes_before == archive_bytes(mf)
    back = read_model(new.archive())
    assert torch.equal(back.pose_field, new.pose_field) and torch.equal(back.output_bias, bias)
    before, after = measured(mf, targets, scorers), measured(new, targets, scorers)
    assert before.mse.mean() == pytest.approx(res.pose_before, rel=1e-5)
    assert after.mse.mean() == pytest.approx(res.pose_after, rel=1e-5)      # the inflate's frames, measured
    assert np.array_equal(after.seg, before.seg)                             # second frames untouched
    # a tiny original: the field's bytes cost more than its pose gain
    dropped, res2 = fit_field(mf, targets, scorers, FieldSettings(iterations=4, lr=2.0, batch_pairs=6),
                              original_bytes=1e2, camera=CAMERA, show_progress=False)
    assert not res2.kept and dropped.pose_field is None and dropped.archive() == mf.archive()
    off, res3 = fit_field(new, targets, scorers, FieldSettings(enabled=False), original_bytes=1e9, camera=CAMERA)
    assert off is new and not res3.kept and res3.bytes_before == archive_bytes(new)


def test_model_file_keeps_the_sidecars(tmp_path, setup):
    _, _, mf = setup
    bias = torch.zeros(PAIRS, 2, 3, dtype=torch.int8)
    bias[2, 1, 0] = 5
    field = torch.zeros(PAIRS, 3, 3, 4, dtype=torch.int8)
    field[4, 2, 1, 3] = -7
    path = save_model_file(tmp_path / "m.pt", mf.model, mf.latents, mf.frames, output_bias=bias)
    assert torch.equal(load_model_file(path).output_bias, bias) and load_model_file(path).pose_field is None
    path = save_model_file(tmp_path / "f.pt", mf.model, mf.latents, mf.frames, pose_field=field)
    back = load_model_file(path)
    assert back.output_bias is None and torch.equal(back.pose_field, field) and back.pose_field.dtype == torch.int8
    both = load_model_file(save_model_file(tmp_path / "b.pt", mf.model, mf.latents, mf.frames, output_bias=bias,
                                           pose_field=field))
    assert torch.equal(both.output_bias, bias) and torch.equal(both.pose_field, field)
    assert both.archive() == build_archive(mf.model, mf.latents, mf.frames, output_bias=bias, pose_field=field)
    assert torch.equal(read_model(both.archive()).pose_field, field)
    with pytest.raises(InputError, match="output_bias"):
        save_model_file(tmp_path / "bad.pt", mf.model, mf.latents, mf.frames, output_bias=bias[:2])
    with pytest.raises(InputError, match="pose_field"):
        save_model_file(tmp_path / "bad.pt", mf.model, mf.latents, mf.frames, pose_field=field[:2])
    with pytest.raises(InputError, match="pose_field"):
        save_model_file(tmp_path / "bad.pt", mf.model, mf.latents, mf.frames, extra={"pose_field": 1})
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, "pose_field": field.flatten(1)}, tmp_path / "bad.pt")
    with pytest.raises(InputError, match="bad.pt: pose_field must have shape"):
        load_model_file(tmp_path / "bad.pt")
