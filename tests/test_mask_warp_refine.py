"""mask_warp after training: the low-bit model is what the archive holds, pose TTO, the QAT
fine-tune, the output-bias sidecar and the pose field never make the exact score worse, and the
model file and the archive keep what they chose."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_mask_warp import CAMERA, TINY, clip_frames, lively, tiny_config, tiny_scorers  # noqa: E402

from tac_core.errors import InputError  # noqa: E402
from tac_torch.chain import pair_targets  # noqa: E402
from tac_torch.mask_warp import render_uint8  # noqa: E402
from tac_torch.mask_warp_io import read_model  # noqa: E402
from tac_torch.mask_warp_refine import (MaskWarpModel, exact_scores, finetune, fit_field, load_model,  # noqa: E402
                                        lowbit, save_model, search_output_bias, tto_poses)
from tac_torch.pose_field import FieldSettings  # noqa: E402
from tac_torch.mask_warp_train import Finetune, load_config, stored_codes  # noqa: E402
from tac_torch.tto import TTOSettings  # noqa: E402

PAIRS = 4


@pytest.fixture(scope="module")
def setup():
    scorers = tiny_scorers(0)
    frames = clip_frames(2 * PAIRS)
    targets = pair_targets(frames, scorers, use_cache=False)
    maps, poses = stored_codes(targets, TINY, 2 * PAIRS)
    return scorers, targets, MaskWarpModel(lively(TINY), poses * 3, maps, 2 * PAIRS)


def test_lowbit_is_what_the_archive_decodes(setup):
    _, _, m = setup
    low = lowbit(m)
    back = read_model(m.archive())
    assert torch.equal(back.poses, low.poses)
    assert all(torch.equal(back.model.state_dict()[k], v) for k, v in low.model.state_dict().items())
    assert lowbit(low).archive() == m.archive()          # quantising twice changes nothing


def test_pose_tto_never_worsens_and_the_archive_holds_the_measured_poses(setup):
    scorers, targets, m = setup
    new, res = tto_poses(m, targets, scorers, TTOSettings(max_epochs=2, lr=8.0, batch_pairs=2), camera=CAMERA,
                         show_progress=False)
    assert res.after.score() <= res.before.score()
    assert exact_scores(new, targets, scorers, CAMERA).score() == pytest.approx(res.after.score(), rel=1e-9)
    if res.changed_pairs:
        assert not torch.equal(new.poses, lowbit(m).poses)


def test_finetune_keeps_the_weights_only_when_the_exact_score_falls(setup):
    scorers, targets, m = setup
    new, res = finetune(m, targets, scorers, steps=3, lr=1e-2, camera=CAMERA, show_progress=False)
    assert res.after <= res.before and res.after == min(res.before, res.tried)
    if res.kept:
        assert exact_scores(new, targets, scorers, CAMERA).score() == pytest.approx(res.after)
    else:
        assert new is m
    same, none = finetune(m, targets, scorers, steps=0, lr=1e-2, camera=CAMERA, show_progress=False)
    assert same is m and not none.kept


def _weights(m: MaskWarpModel) -> torch.Tensor:
    return torch.cat([v.flatten() for v in m.model.state_dict().values()])


def test_a_seg_judged_finetune_scores_the_seg_term_and_its_pose_weight_reaches_the_loss(setup):
    import dataclasses

    scorers, targets, m = setup
    moved = dataclasses.replace(targets, pose=targets.pose + 1.0)      # only the pose targets differ
    run = {(w, name): finetune(m, t, scorers, steps=3, lr=1e-2, pose_weight=w, judge="seg", camera=CAMERA,
                               show_progress=False)
           for w in (0.0, 1.0) for name, t in (("same", targets), ("moved", moved))}
    new, res = run[1.0, "same"]
    assert res.kept and res.before == pytest.approx(exact_scores(m, targets, scorers, CAMERA).seg_score())
    assert exact_scores(new, targets, scorers, CAMERA).seg_score() == pytest.approx(res.after)
    assert res.tried == res.after < res.before
    assert exact_scores(m, targets, scorers, CAMERA).score() > res.before      # the pose term is left out
    assert all(r.kept for _, r in run.values())
    assert torch.equal(_weights(run[0.0, "same"][0]), _weights(run[0.0, "moved"][0]))   # pose weight 0
    assert not torch.equal(_weights(run[1.0, "same"][0]), _weights(run[1.0, "moved"][0]))
    with pytest.raises(InputError, match="judge must be one of"):
        finetune(m, targets, scorers, steps=1, lr=1e-2, judge="pose", camera=CAMERA, show_progress=False)


def test_a_checked_finetune_runs_on_while_it_helps_and_keeps_its_best_weights(setup):
    scorers, targets, m = setup
    kw = dict(lr=1e-2, pose_weight=0.0, judge="seg", camera=CAMERA, show_progress=False)
    one, r1 = finetune(m, targets, scorers, steps=1, **kw)
    two, r2 = finetune(m, targets, scorers, steps=2, **kw)
    new, res = finetune(m, targets, scorers, steps=2, check_every=1, **kw)   # checks after steps 1 and 2
    assert r1.kept and r1.before == res.before
    if r2.after < r1.after:                 # the second step helped: it ran and its weights are kept
        assert res.steps == 2 and res.after == r2.after == res.tried
        assert torch.equal(_weights(new), _weights(two))
    else:                                   # it did not: the run kept the first step's weights
        assert res.steps == 2 and res.after == r1.after and res.tried == r2.tried
        assert torch.equal(_weights(new), _weights(one))
    # a first check that does not beat the given weights ends the run there (lr far too high)
    worse, bad = finetune(m, targets, scorers, steps=5, check_every=1, **{**kw, "lr": 50.0})
    assert (bad.kept, bad.steps, worse) == (False, 1, m) and bad.tried >= bad.before
    for steps, every in ((1, -1), (-1, 0)):
        with pytest.raises(InputError, match="steps and check_every must be >= 0"):
            finetune(m, targets, scorers, steps=steps, check_every=every, **kw)


def test_sidecar_pays_for_its_bytes_and_inflates_as_measured(setup):
    scorers, targets, m = setup
    new, res = search_output_bias(m, targets, scorers, TTOSettings(max_epochs=1, lr=6.0, batch_pairs=2),
                                  original_bytes=1e9, camera=CAMERA, show_progress=False)
    assert res.score_after <= res.score_before
    if res.kept:
        back = read_model(new.archive())
        assert torch.equal(back.output_bias, new.output_bias)
        frames = torch.cat(list(render_uint8(back.model, back.class_maps, back.poses, "cpu", CAMERA,
                                             output_bias=back.output_bias)))
        plain = torch.cat(list(render_uint8(back.model, back.class_maps, back.poses, "cpu", CAMERA)))
        assert not torch.equal(frames, plain)
    dropped, res2 = search_output_bias(m, targets, scorers, TTOSettings(max_epochs=1, lr=6.0, batch_pairs=2),
                                       original_bytes=1e3, camera=CAMERA, show_progress=False)
    assert not res2.kept and dropped is m


def test_the_pose_field_pays_for_its_bytes_leaves_seg_alone_and_inflates_as_measured(setup):
    scorers, targets, m = setup
    settings = FieldSettings(iterations=20, lr=2.0, batch_pairs=3)
    new, res = fit_field(m, targets, scorers, settings, original_bytes=1e9, camera=CAMERA, show_progress=False)
    assert res.kept and res.pose_after < res.pose_before and res.score_after < res.score_before
    assert res.pairs_with_field == int(new.pose_field.flatten(1).any(1).sum()) > 0
    assert res.bytes_after == new.archive_bytes() > res.bytes_before == m.archive_bytes()
    back = read_model(new.archive())
    assert torch.equal(back.pose_field, new.pose_field)
    before, after = exact_scores(m, targets, scorers, CAMERA), exact_scores(new, targets, scorers, CAMERA)
    assert after.mse.mean() == pytest.approx(res.pose_after, rel=1e-5)      # the inflate's frames, measured
    assert np.array_equal(after.seg, before.seg)                             # second frames untouched
    dropped, res2 = fit_field(m, targets, scorers, settings, original_bytes=1e2, camera=CAMERA, show_progress=False)
    assert not res2.kept and dropped.pose_field is None and dropped.archive() == m.archive()
    off, res3 = fit_field(new, targets, scorers, FieldSettings(enabled=False), original_bytes=1e9, camera=CAMERA)
    assert off is new and not res3.kept
    with pytest.raises(InputError, match=r"\[pose_field\] iterations"):
        FieldSettings(iterations=-1)


def test_model_files_round_trip_and_bad_ones_are_one_sentence(tmp_path, setup):
    _, _, m = setup
    bias = torch.zeros(PAIRS, 2, 3, dtype=torch.int8)
    bias[1, 0, 2] = -4
    field = torch.zeros(PAIRS, 3, 3, 4, dtype=torch.int8)
    field[2, 1, 0, 3] = 9
    chosen = MaskWarpModel(m.model, m.poses, m.class_maps, m.frames, "int4_sym", bias, field)
    back = load_model(save_model(tmp_path / "m.pt", chosen))
    assert torch.equal(back.output_bias, bias) and np.array_equal(back.class_maps, m.class_maps)
    assert torch.equal(back.pose_field, field)
    assert back.archive() == chosen.archive() != MaskWarpModel(m.model, m.poses, m.class_maps, m.frames,
                                                               "int4_sym", bias).archive()
    (tmp_path / "bad.pt").write_bytes(b"not a model")
    with pytest.raises(InputError, match="not a readable mask_warp model file"):
        load_model(tmp_path / "bad.pt")


def test_refinement_tables_are_outside_the_training_fingerprint():
    base = tiny_config()
    from tac_torch.mask_warp_train import config_from_dict

    other = config_from_dict({"train": {**{k: v for k, v in base.as_dict().items() if k not in ("spec",)}},
                              "spec": dict(TINY), "tto": {"max_epochs": 7}, "finetune": {"qat_steps": 3}})
    assert other.fingerprint() == base.fingerprint() and other.tto.max_epochs == 7
    with pytest.raises(InputError, match="qat_steps"):
        config_from_dict({"finetune": {"qat_steps": -1}})
    seg = config_from_dict({"finetune": {"qat_steps": 2, "pose": 0, "judge": "seg", "check_every": 1}}).finetune
    assert (seg.pose, seg.judge, seg.check_every) == (0, "seg", 1)
    assert (Finetune().pose, Finetune().judge, Finetune().check_every) == (1.0, "score", 0)
    for bad, match in (({"judge": "pose"}, "judge must be one of 'score', 'seg'"),
                       ({"pose": -0.5}, "pose must be a number >= 0"), ({"pose": "no"}, "pose must be"),
                       ({"check_every": 1.5}, "check_every must be an integer >= 0")):
        with pytest.raises(InputError, match=match):
            config_from_dict({"finetune": bad})
    assert load_config("demo").with_total_steps(3).total_steps == 3
    demo = load_config("demo")                   # its starts scale with the run
    assert (demo.starts, demo.start_steps) == (2, 300)
    assert (demo.with_total_steps(92).starts, demo.with_total_steps(92).start_steps) == (2, 30)
    assert (demo.with_total_steps(3).starts, demo.with_total_steps(3).start_steps) == (2, 1)
    assert (demo.with_total_steps(1).starts, demo.with_total_steps(1).start_steps) == (1, 0)


def test_near_lossless_maps_flip_only_specks_and_never_worsen_the_score(setup):
    from tac_core.archive.classmap import speck_fill
    from tac_torch.mask_warp_refine import edit_maps, flip_costs
    from tac_torch.mask_warp_train import Maps

    scorers, targets, m = setup
    cost = flip_costs(m, targets, scorers, camera=CAMERA)
    assert cost.shape == m.class_maps.shape and np.isfinite(cost).all() and np.abs(cost).max() > 0
    same, off = edit_maps(m, targets, scorers, Maps(), original_bytes=1e6, camera=CAMERA)
    assert same is m and not off.kept
    new, res = edit_maps(m, targets, scorers, Maps(max_flip_fraction=0.05), original_bytes=1e3, camera=CAMERA)
    assert res.score_after <= res.score_before
    if res.kept:
        changed = new.class_maps != m.class_maps
        assert res.flipped == int(changed.sum()) > 0 and res.bytes_after < res.bytes_before
        for p in range(len(m.class_maps)):
            fill, _ = speck_fill(m.class_maps[p])
            assert np.array_equal(new.class_maps[p][changed[p]], fill[changed[p]])
    else:
        assert new is m


def test_steered_maps_move_boundary_pixels_only_and_never_worsen_the_score(setup):
    from tac_torch.mask_warp_refine import edit_maps
    from tac_torch.mask_warp_train import Maps

    scorers, targets, m = setup
    new, res = edit_maps(m, targets, scorers, Maps(steer_rounds=2, steer_flips=20), original_bytes=1e6,
                         camera=CAMERA, show_progress=False)
    assert res.steer is not None and res.steer.rounds == 2
    assert res.steer.errors_after <= res.steer.errors_before
    assert res.score_after <= res.score_before
    if res.kept:
        changed = new.class_maps != m.class_maps
        assert res.flipped == int(changed.sum()) > 0
        assert changed.reshape(len(changed), -1).sum(1).max() <= 2 * 20       # at most flips per map per round
    else:
        assert new is m
    with pytest.raises(InputError, match="steer_rounds"):
        Maps(steer_rounds=-1)
    with pytest.raises(InputError, match="steer_flips"):
        Maps(steer_flips=0)
    with pytest.raises(InputError, match="steer_window"):
        Maps(steer_window=-1)
    for floor in (-0.1, 2.5, "0.5", True):
        with pytest.raises(InputError, match="steer_margin_floor"):
            Maps(steer_margin_floor=floor)
    with pytest.raises(InputError, match="leads on the original"):
        edit_maps(m, targets, scorers, Maps(steer_rounds=1, steer_margin_floor=0.5), original_bytes=1e6,
                  camera=CAMERA, show_progress=False)
    leads = np.full(targets.seg.shape, 0.1, np.float16)
    floored, res = edit_maps(m, targets, scorers, Maps(steer_rounds=1, steer_flips=20, steer_window=1,
                                                       steer_margin_floor=0.5),
                             original_bytes=1e6, original_leads=leads, camera=CAMERA, show_progress=False)
    assert res.steer is not None and res.steer.errors_after <= res.steer.errors_before
    assert res.score_after <= res.score_before
