"""The mask_warp renderer: the warp, class-conditioned norms, the spec, archive round trips,
runtime dispatch, training (loss, resume) and, marked slow, compress -> inflate -> evaluate."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tac_core import contract, registry, video  # noqa: E402
from tac_core.architectures import mask_warp as arch  # noqa: E402
from tac_core.archive import read_archive  # noqa: E402
from tac_core.errors import ArchiveError, InputError  # noqa: E402
from tac_runtime import inflate  # noqa: E402
from tac_torch import mask_warp  # noqa: E402
from tac_torch.mask_warp import MaskWarp, MaskWarpRenderer, warp  # noqa: E402
from tac_torch.mask_warp_export import build_archive, export_submission  # noqa: E402
from tac_torch.mask_warp_io import read_model  # noqa: E402

TINY = arch.make_spec(out_h=16, out_w=24, levels=1, width_0=4, width_1=6, out_width=4, flow_down=2,
                      flow_width=4, residual_width=4)


def codes(pairs: int, spec=TINY, seed: int = 0):
    """Blocky class maps (uint8) and poses: what an archive stores per pair."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, spec["classes"], (pairs, spec["out_h"] // 4, spec["out_w"] // 4))
    maps = np.repeat(np.repeat(blocks, 4, axis=1), 4, axis=2).astype(np.uint8)
    poses = torch.from_numpy(rng.normal(0, 1, (pairs, spec["pose_dim"])).astype(np.float32))
    return maps, poses


def lively(spec=TINY, seed: int = 3) -> MaskWarp:
    """A seeded network whose flow, FiLM and residual are not at their neutral start."""
    net = MaskWarp(spec, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.startswith(("flow_film", "flow_out", "residual_out", "stem.norm", "fine.norm")):
                p.add_(0.3 * torch.randn(p.shape, generator=gen))
    return net.eval()


# --- warp ---------------------------------------------------------------------------

@pytest.mark.parametrize("hw", [(384, 512), (16, 24), (7, 13)])
def test_zero_flow_returns_the_image_exactly(hw):
    image = torch.rand(2, 3, *hw, generator=torch.Generator().manual_seed(0)) * 255
    assert torch.equal(warp(image, torch.zeros(2, 2, *hw)), image)


@pytest.mark.parametrize("dx, dy", [(3, -2), (-5, 4), (1, 0)])
def test_an_integer_flow_moves_the_image_by_whole_pixels(dx, dy):
    h, w = 40, 52
    image = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(1)) * 255
    flow = torch.zeros(1, 2, h, w)
    flow[:, 0], flow[:, 1] = dx, dy
    out = warp(image, flow)
    # out[y, x] = image[y + dy, x + dx] wherever the source is inside the image
    ys, xs = slice(max(0, -dy), h - max(0, dy)), slice(max(0, -dx), w - max(0, dx))
    src_ys, src_xs = slice(ys.start + dy, ys.stop + dy), slice(xs.start + dx, xs.stop + dx)
    assert torch.equal(out[..., ys, xs], image[..., src_ys, src_xs])
    assert not torch.equal(out, image)


def test_a_half_pixel_flow_averages_neighbours_and_the_warp_has_a_gradient():
    image = torch.arange(12.0).view(1, 1, 1, 12).expand(1, 1, 3, 12).contiguous()
    flow = torch.full((1, 2, 3, 12), 0.0, requires_grad=True)
    shifted = flow + torch.tensor([0.5, 0.0]).view(1, 2, 1, 1)
    out = warp(image, shifted)
    assert torch.allclose(out[0, 0, 1, :11], torch.arange(11.0) + 0.5)
    out.sum().backward()
    assert flow.grad is not None and float(flow.grad[0, 0].abs().sum()) > 0


def test_warp_rejects_mismatched_shapes():
    with pytest.raises(InputError, match="warp needs"):
        warp(torch.zeros(1, 3, 8, 8), torch.zeros(1, 2, 8, 9))


# --- class-conditioned normalisation -------------------------------------------------

def test_a_class_tables_change_moves_only_that_classes_pixels_at_the_finest_level():
    net = lively()
    maps, poses = codes(2)
    cm = torch.from_numpy(maps).long()
    with torch.no_grad():
        onehot = net.onehot(cm)
        before = net.second_frame(onehot)
        net.fine.norm.gamma[2] += 0.7
        net.fine.norm.beta[2] -= 0.5
        after = net.second_frame(onehot)
    changed = (after != before).any(dim=1)          # (B, H, W)
    assert bool(changed[cm == 2].all()) and not bool(changed[cm != 2].any())


def test_the_class_map_conditions_the_second_frame():
    net = lively()
    maps, poses = codes(1)
    other = maps.copy()
    other[0, :8] = (other[0, :8] + 1) % TINY["classes"]
    with torch.no_grad():
        a = net(torch.from_numpy(maps).long(), poses)[:, 1]
        b = net(torch.from_numpy(other).long(), poses)[:, 1]
    diff = (a - b).abs()
    assert not torch.equal(a, b) and float(diff[..., :8, :].mean()) > float(diff[..., 8:, :].mean())


def test_the_pose_moves_the_first_frame_only():
    net = lively()
    maps, poses = codes(1)
    cm = torch.from_numpy(maps).long()
    with torch.no_grad():
        a, b = net(cm, poses), net(cm, poses * 3)
    assert torch.equal(a[:, 1], b[:, 1]) and not torch.equal(a[:, 0], b[:, 0])
    fresh = MaskWarp(TINY, seed=0).eval()          # neutral start: the first frame is the second
    with torch.no_grad():
        pair = fresh(cm, poses)
    assert torch.equal(fresh.flow(fresh.onehot(cm), poses), torch.zeros(1, 2, *pair.shape[-2:]))
    assert torch.equal(pair[:, 0], pair[:, 1])


# --- spec ---------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, message", [
    ({"levels": 0}, "levels"),
    ({"coords": 2}, "coords"),
    ({"classes": 1}, "classes"),
    ({"out_h": 20}, "multiple of"),
    ({"flow_down": 9}, "flow_down"),
    ({"width_0": 0}, "positive"),
    ({"bogus": 3}, "unknown"),
    ({"flow_width": -1}, "non-negative"),
])
def test_bad_specs_are_input_errors_that_name_the_problem(overrides, message):
    with pytest.raises(InputError, match=message):
        arch.make_spec(**overrides)


def test_the_numpy_shapes_are_the_torch_state_dict_in_order():
    for spec in (arch.make_spec(), TINY, arch.make_spec(levels=3, coords=0)):
        state = MaskWarp(spec).state_dict()
        shapes = arch.tensor_shapes(spec)
        assert list(state) == list(shapes)
        assert all(tuple(state[k].shape) == shapes[k] for k in shapes)
    n = arch.param_count()
    print(f"mask_warp default: {n} parameters")
    assert 10_000 < n < 100_000


def test_seeded_networks_are_identical_and_leave_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b = MaskWarp(TINY, seed=5), MaskWarp(TINY, seed=5)
    assert torch.equal(torch.rand(1), before)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_resize_class_maps_subsamples_by_nearest_neighbour():
    maps = np.arange(2 * 8 * 12, dtype=np.uint8).reshape(2, 8, 12)
    small = arch.resize_class_maps(maps, 4, 6)
    assert np.array_equal(small, maps[:, ::2, ::2])
    assert arch.resize_class_maps(maps, 8, 12) is maps


# --- archive round trip ---------------------------------------------------------------

@pytest.mark.parametrize("frames, spec", [(6, TINY), (5, TINY), (3, arch.make_spec(**{**TINY, "levels": 2,
                                                                                      "width_2": 5}))])
def test_archive_round_trip_is_exact(frames, spec):
    pairs = -(-frames // 2)
    net = lively(spec)
    maps, poses = codes(pairs, spec)
    data = build_archive(net, poses, maps, frames)
    archive = read_archive(data)
    assert archive.architecture.id == arch.SPEC_ID and archive.by_position     # every topology
    decoded = read_model(data)
    assert decoded.frames == frames
    assert np.array_equal(decoded.class_maps.numpy(), maps)
    assert torch.equal(decoded.poses, torch.from_numpy(archive.tensors[arch.POSES]))
    assert float((decoded.poses - poses).abs().max()) <= float(poses.abs().max(0).values.max()) / 127
    for name, value in decoded.model.arrays().items():
        assert np.array_equal(value, archive.tensors[name]), name
    assert archive.quantized["fine.conv.weight"].spec.kind == "int4_sym"
    # the exporter's model, with its weights replaced by the stored ones, renders the same bytes
    net.load_state_dict({k: torch.from_numpy(v) for k, v in decoded.model.arrays().items()})
    a = np.concatenate([p.numpy() for p in mask_warp.render_uint8(net, torch.from_numpy(maps).long(), decoded.poses)])
    b = MaskWarpRenderer(spec).render(decoded.model.arrays(), {arch.POSES: decoded.poses.numpy(),
                                                               arch.CLASS_MAPS: maps}, range(pairs))
    assert a.shape == (pairs, 2, *contract.CAMERA_HW, 3) and np.array_equal(a, b)


def test_the_exporter_refuses_codes_that_do_not_fit():
    net = MaskWarp(TINY)
    maps, poses = codes(3)
    with pytest.raises(InputError, match="poses of shape"):
        build_archive(net, poses[:2], maps, 6)
    with pytest.raises(InputError, match="class maps"):
        build_archive(net, poses, maps[:, :8], 6)
    bad = maps.copy()
    bad[0, 0, 0] = TINY["classes"]
    with pytest.raises(InputError, match="class 5"):
        build_archive(net, poses, bad, 6)
    with pytest.raises(InputError, match="int4_sym"):
        build_archive(net, poses, maps, 6, weights="fp32")


def test_an_hnerv_archive_is_not_read_as_mask_warp():
    from tac_torch import renderers
    from tac_torch.export import build_archive as hnerv_archive

    spec = renderers.make_spec(stages=2, out_h=16, out_w=24, latent_dim=4, width_0=4, width_1=4, width_2=4)
    data = hnerv_archive(renderers.HnervPair(spec), renderers.init_latents(1, spec), 2)
    with pytest.raises(ArchiveError, match="not mask_warp"):
        read_model(data)


def test_the_registered_renderer_is_mask_warp():
    renderer = registry.get("renderers", "mask_warp").factory(spec=TINY)
    assert renderer.spec["renderer_id"] == arch.SPEC_ID
    maps, poses = codes(2)
    out = renderer.render(MaskWarp(TINY, seed=0).arrays(), {arch.POSES: poses.numpy(), arch.CLASS_MAPS: maps}, [1])
    assert out.shape == (1, 2, *contract.CAMERA_HW, 3) and out.dtype == np.uint8


# --- runtime ------------------------------------------------------------------------

@pytest.mark.parametrize("frames", [5, 2])
def test_a_mask_warp_member_inflates_through_the_dispatching_runtime(tmp_path, capsys, monkeypatch, frames):
    monkeypatch.setattr(mask_warp, "RENDER_BATCH", 2)     # several batches, the last one short
    pairs = -(-frames // 2)
    net = lively()
    maps, poses = codes(pairs)
    folder = tmp_path / "archive"
    folder.mkdir()
    (folder / "clip.tac").write_bytes(build_archive(net, poses, maps, frames))
    names = tmp_path / "names.txt"
    names.write_text("clip.mkv\n")
    assert inflate.main([str(folder), str(tmp_path / "out"), str(names)]) == 0
    assert f"clip.mkv: {frames} frames" in capsys.readouterr().out
    raw = tmp_path / "out" / "clip.raw"
    assert raw.stat().st_size == frames * contract.FRAME_BYTES
    decoded = read_model((folder / "clip.tac").read_bytes())
    expected = MaskWarpRenderer(TINY).render(decoded.model.arrays(), {arch.POSES: decoded.poses.numpy(),
                                                                      arch.CLASS_MAPS: maps}, range(pairs))
    assert np.array_equal(video.open_raw(raw), expected.reshape(-1, *contract.CAMERA_HW, 3)[:frames])


def test_an_unknown_architecture_id_is_one_line_and_exit_2(tmp_path, capsys):
    from tac_core.archive import Architecture, write_archive

    folder = tmp_path / "archive"
    folder.mkdir()
    (folder / "0.tac").write_bytes(write_archive({"x": np.zeros(3, np.float32)}, architecture=Architecture(70000)))
    names = tmp_path / "names.txt"
    names.write_text("0.mkv\n")
    assert inflate.main([str(folder), str(tmp_path / "out"), str(names)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "architecture id 70000" in err


def test_an_exported_submission_vendors_the_mask_warp_runtime(tmp_path):
    maps, poses = codes(2)
    out = export_submission(tmp_path / "sub", lively(), poses, maps, 4, video_name="clip.mkv")
    for name in ("mask_warp.py", "mask_warp_io.py"):
        assert (out / "tac_torch" / name).is_file()
    assert (out / "runtime" / "mask_warp.py").is_file() and (out / contract.ARCHIVE_NAME).is_file()


# --- training -----------------------------------------------------------------------

CAMERA = (48, 64)                       # a reduced camera: the scorers resize to 384x512 anyway


class _TinyPose(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(12, 8, 4, stride=4)
        self.head = torch.nn.Linear(8, 12)

    def forward(self, x):
        return {"pose": self.head(torch.tanh(self.conv(x / 64.0)).mean(dim=(2, 3)))}


def tiny_scorers(seed: int = 0):
    """Seeded one-layer scorers with the contest interfaces: fast plumbing for training tests."""
    from tac_torch.scorers import TorchScorers

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        seg, pose = torch.nn.Conv2d(3, 5, 3, padding=1), _TinyPose()
        with torch.no_grad():
            seg.weight.mul_(1 / 64)
    return TorchScorers("stand-in", seg, pose, {"tiny": str(seed)}, False, "cpu")


def tiny_config(**train):
    from tac_torch.mask_warp_train import config_from_dict

    head = {"name": "tiny", "batch_pairs": 1, "checkpoint_every": 1, "camera_h": CAMERA[0],
            "camera_w": CAMERA[1], "float_steps": 2, "qat_steps": 2, "lr": 1e-2, "lr_qat": 3e-3, "warmup": 0}
    return config_from_dict({"train": {**head, **train}, "spec": dict(TINY)})


def clip_frames(n: int, seed: int = 0) -> np.ndarray:
    """Smooth moving colour ramps at the reduced camera size, uint8 (n, 48, 64, 3)."""
    yy, xx = np.mgrid[0:CAMERA[0], 0:CAMERA[1]].astype(np.float32)
    frames = [np.stack([(xx * 4 + 9 * i + seed) % 256, yy * 5, (xx + yy) * 2 + 20 * i], -1) for i in range(n)]
    return np.clip(frames, 0, 255).astype(np.uint8)


def read_toml_of(preset: str) -> dict:
    import tomllib
    from pathlib import Path

    import tac_torch

    return tomllib.loads((Path(tac_torch.__file__).parent / "presets" / f"mask_warp_{preset}.toml").read_text())


def test_configs_are_checked_and_presets_load():
    from tac_torch.mask_warp_train import config_from_dict, load_config

    for name in ("demo", "mask_warp_contest"):
        config = load_config(name)
        assert config.total_steps > 0 and config.weights in ("int4_sym", "int8_sym")
        MaskWarp(config.renderer_spec())
    with pytest.raises(InputError, match="unknown key 'lrr'"):
        config_from_dict({"train": {"lrr": 1.0}})
    with pytest.raises(InputError, match="unknown table"):
        config_from_dict({"stage": []})
    with pytest.raises(InputError, match="weights"):
        config_from_dict({"train": {"weights": "fp4_e2m1"}})
    with pytest.raises(InputError, match=r"\[spec\]"):
        config_from_dict({"spec": {"levels": 9}})
    with pytest.raises(InputError, match="float_steps"):
        config_from_dict({"train": {"float_steps": -1}})
    with pytest.raises(InputError, match="'camera_path' must be one of exact, linear"):
        config_from_dict({"train": {"camera_path": "approx"}})
    linear = config_from_dict({"train": {"camera_path": "linear"}}).fingerprint()
    exact = config_from_dict({"train": {"camera_path": "exact"}}).fingerprint()
    assert exact == config_from_dict({}).fingerprint() != linear
    with pytest.raises(InputError, match="'sampling' must be one of random, epochs"):
        config_from_dict({"train": {"sampling": "even"}})
    epochs = config_from_dict({"train": {"sampling": "epochs"}}).fingerprint()   # random: as before the key
    plain = config_from_dict({}).fingerprint()
    assert config_from_dict({"train": {"sampling": "random"}}).fingerprint() == plain != epochs
    with pytest.raises(InputError, match=r"unknown key 'iters' in \[pose_field\]"):
        config_from_dict({"pose_field": {"iters": 3}})
    with pytest.raises(InputError, match=r"\[pose_field\] lr"):
        config_from_dict({"pose_field": {"lr": "fast"}})
    assert load_config("demo").pose_field.enabled
    assert load_config("demo").fingerprint() == config_from_dict(
        {**read_toml_of("demo"), "pose_field": {"enabled": False}}, "x.toml").fingerprint()   # not training's
    config = tiny_config(warmup=2, float_steps=4, lr=1.0, lr_qat=0.5, lr_floor=0.1)
    assert [config.phase_at(s) for s in (0, 1, 2, 4)] == [(False, 0.5), (False, 1.0), (False, 1.0), (True, 0.5)]
    assert config.phase_at(5) == (True, pytest.approx(0.5 * (0.1 + 0.9 * 0.5)))   # half-way down the cosine


def test_stored_codes_follow_the_targets_and_cover_an_odd_last_frame():
    from tac_torch.chain import Targets
    from tac_torch.mask_warp_train import stored_codes

    seg = np.random.default_rng(0).integers(0, 5, (2, 384, 512)).astype(np.uint8)
    pose = np.arange(24, dtype=np.float32).reshape(2, 12)
    maps, poses = stored_codes(Targets(seg, pose), TINY, 5)
    assert maps.shape == (3, 16, 24) and maps.dtype == np.uint8
    assert np.array_equal(maps[:2], arch.resize_class_maps(seg, 16, 24)) and np.array_equal(maps[2], maps[1])
    assert torch.equal(poses[:2], torch.from_numpy(pose[:, :6])) and torch.equal(poses[2], poses[1])
    with pytest.raises(InputError, match="scored pairs"):
        stored_codes(Targets(seg, pose), TINY, 9)


@pytest.mark.parametrize("path", ["exact", "linear"])
def test_a_few_steps_lower_the_loss(tmp_path, path):
    from tac_torch.chain import pair_targets
    from tac_torch.mask_warp_train import MaskWarpTrainer

    scorers = tiny_scorers()
    frames = clip_frames(2)
    targets = pair_targets(frames, scorers, cache_dir=tmp_path)
    trainer = MaskWarpTrainer(tiny_config(float_steps=3, qat_steps=0, rate=0.0, camera_path=path), None, scorers,
                              tmp_path / "out", targets=targets, show_progress=False)
    assert trainer.chain.path == path
    with torch.no_grad():
        first = float(trainer.losses(trainer.pairs_at(0), qat=False)["loss"])
    for _ in range(3):
        trainer.train_step()
    with torch.no_grad():
        last = float(trainer.losses(trainer.pairs_at(0), qat=False)["loss"])
    assert last < first, (first, last)


@pytest.mark.parametrize("sampling", ["random", "epochs"])
def test_interrupted_and_resumed_training_equals_straight_through(tmp_path, sampling):
    from tac_torch.checkpoint import latest_checkpoint
    from tac_torch.mask_warp_train import MaskWarpTrainer
    from tac_torch.sampling import sampled_pairs

    scorers, config, frames = tiny_scorers(), tiny_config(sampling=sampling), clip_frames(5)
    straight = MaskWarpTrainer(config, frames, scorers, tmp_path / "a", show_progress=False)
    assert [straight.pairs_at(s).tolist() for s in range(4)] == [
        sampled_pairs(0, s, straight.n_pairs, 1, sampling).tolist() for s in range(4)]
    straight = straight.run()
    assert straight.finished and straight.step == 4 and straight.frames == 5
    assert straight.class_maps.shape == (3, 16, 24) and straight.poses.shape == (3, 6)

    part = MaskWarpTrainer(config, frames, scorers, tmp_path / "b", show_progress=False).run(stop_after=3)
    assert not part.finished and part.step == 3 and part.checkpoint == latest_checkpoint(tmp_path / "b")
    with pytest.raises(InputError, match="--resume"):
        MaskWarpTrainer(config, frames, scorers, tmp_path / "b", show_progress=False).run()
    with pytest.raises(InputError, match="uses recipe"):
        MaskWarpTrainer(tiny_config(seed=4), frames, scorers, tmp_path / "b", show_progress=False).run(resume=True)
    resumed = MaskWarpTrainer(config, frames, scorers, tmp_path / "b", show_progress=False).run(resume=True)
    assert resumed.finished
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["fine.conv.weight"], MaskWarp(TINY, seed=0).state_dict()["fine.conv.weight"])
    # the trained network exports and renders (the archive round trip is tested above)
    data = build_archive(resumed.model, resumed.poses, resumed.class_maps, resumed.frames)
    assert read_model(data).frames == 5


def test_starts_go_on_from_the_start_with_the_fewest_seg_errors(tmp_path):
    from tac_torch.mask_warp_train import MaskWarpTrainer

    scorers, frames = tiny_scorers(), clip_frames(5)
    config = tiny_config(seed=3, starts=3, start_steps=2)
    res = MaskWarpTrainer(config, frames, scorers, tmp_path / "s", show_progress=False).run()
    assert res.finished and res.step == 4
    assert [seed for seed, _ in res.starts] == [9, 10, 11]           # seed * starts + j
    segs = dict(res.starts)
    assert res.seed in segs and segs[res.seed] == min(segs.values())
    assert not (tmp_path / "s" / "starts").exists()
    # going on from the chosen start is the plain run of its seed: same weights to the last bit
    plain = MaskWarpTrainer(tiny_config(seed=res.seed), frames, scorers, tmp_path / "p", show_progress=False)
    assert plain.run().starts == ()
    trained, alone = res.model.state_dict(), plain.net.state_dict()
    assert all(torch.equal(trained[k], alone[k]) for k in trained)
    # each start is judged on the same thing: a fresh trainer of that seed after 2 steps agrees
    other = MaskWarpTrainer(tiny_config(seed=9), frames, scorers, tmp_path / "o", show_progress=False)
    other.run(stop_after=2)
    assert other.seg_disagreement() == pytest.approx(segs[9])


def test_an_interrupted_start_resumes_and_a_fresh_run_refuses_its_folder(tmp_path, monkeypatch):
    from tac_torch.mask_warp_train import MaskWarpTrainer

    scorers, frames = tiny_scorers(), clip_frames(5)
    config = tiny_config(starts=2, start_steps=2, checkpoint_every=1)
    straight = MaskWarpTrainer(config, frames, scorers, tmp_path / "a", show_progress=False).run()

    calls, real = [0], MaskWarpTrainer._step

    def interrupted(self):
        calls[0] += 1
        if calls[0] == 4:                                 # the second step of the second start
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(MaskWarpTrainer, "_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        MaskWarpTrainer(config, frames, scorers, tmp_path / "b", show_progress=False).run()
    monkeypatch.setattr(MaskWarpTrainer, "_step", real)
    assert (tmp_path / "b" / "starts" / "1").is_dir()
    with pytest.raises(InputError, match="--resume"):
        MaskWarpTrainer(config, frames, scorers, tmp_path / "b", show_progress=False).run()
    resumed = MaskWarpTrainer(config, frames, scorers, tmp_path / "b", show_progress=False).run(resume=True)
    assert resumed.starts == straight.starts and resumed.seed == straight.seed
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_starts_need_fewer_start_steps_than_the_run():
    from tac_torch.mask_warp_train import config_from_dict

    for bad in ({"starts": 2}, {"starts": 2, "start_steps": 4}, {"starts": 0}, {"start_steps": -1}):
        with pytest.raises(InputError, match="start"):
            tiny_config(**bad)
    # one start (the default) leaves the fingerprint as it was before the keys existed
    one = config_from_dict({"train": {"starts": 1, "start_steps": 0}})
    assert one.fingerprint() == config_from_dict({}).fingerprint()
    assert tiny_config(starts=2, start_steps=1).fingerprint() != tiny_config().fingerprint()


# --- end to end ----------------------------------------------------------------------

@pytest.mark.slow
def test_compress_mask_warp_inflates_through_its_submission_and_scores(tmp_path, small_clip, python_without_tac):
    from dataclasses import replace

    from tac_core import evidence, harness
    from tac_torch.evaluate import evaluate
    from tac_torch.mask_warp_train import WORK, compress_mask_warp, load_config
    from tac_torch.scorers import load_scorers

    scorers = load_scorers("proxy")
    config = replace(load_config("demo"), float_steps=2, qat_steps=1, warmup=1, checkpoint_every=1, start_steps=1)
    assert config.starts == 2                                   # the demo's two starts, one step each here
    out = compress_mask_warp(small_clip, scorers, tmp_path / "sub", config, show_progress=False)
    assert (out / contract.ARCHIVE_NAME).is_file() and (out / WORK / "checkpoints").is_dir()
    assert not (out / WORK / "starts").exists()
    raws = harness.run_inflate(out, [small_clip.name], python=python_without_tac, cwd=tmp_path)
    raw = raws[small_clip.name]
    assert raw.stat().st_size == 6 * contract.FRAME_BYTES
    member = read_model((out / "archive" / "clip.tac").read_bytes())
    assert member.frames == 6 and member.class_maps.shape == (3, 384, 512)
    expected = MaskWarpRenderer(member.model.spec).render(
        member.model.arrays(), {arch.POSES: member.poses.numpy(), arch.CLASS_MAPS: member.class_maps.numpy()},
        range(3))
    assert np.array_equal(video.open_raw(raw), expected.reshape(-1, *contract.CAMERA_HW, 3))
    result = evaluate(out, small_clip.parent, scorers, cache_dir=tmp_path / "cache", show_progress=False)
    c = result.components
    print(f"mask_warp on {small_clip.name}: seg {c.seg:.4f} pose {c.pose:.4f} bytes {c.archive_bytes} "
          f"score {c.score:.3f}")
    assert c.samples == 3 and np.isfinite(c.score) and c.archive_bytes == (out / contract.ARCHIVE_NAME).stat().st_size
    assert result.record.axis == evidence.PROXY
    # resuming a finished run re-exports the same archive without training again
    before = (out / contract.ARCHIVE_NAME).read_bytes()
    compress_mask_warp(small_clip, scorers, tmp_path / "sub", config, resume=True, show_progress=False)
    assert (out / contract.ARCHIVE_NAME).read_bytes() == before


@pytest.mark.parametrize("stage", ["classmap2", "brotli", None])
def test_the_class_maps_section_has_the_chain_class_map_chain_names(monkeypatch, stage):
    from tac_core.archive import Chain, Stage
    from tac_core.archive import format as fmt
    from tac_torch import mask_warp_export

    maps, poses = codes(3)
    if stage == "brotli":
        monkeypatch.setattr(mask_warp_export, "class_map_chain", lambda spec: Chain((), Stage(fmt.S_BROTLI)))
    elif stage is None:
        monkeypatch.setattr(mask_warp_export, "class_map_chain", lambda spec: None)
    data = build_archive(lively(), poses, maps, 6)
    section = next(s for s in read_archive(data).sections if arch.CLASS_MAPS in s.names)
    if stage is not None:
        assert section.names == (arch.CLASS_MAPS,) and section.codes_chain.stage.id == fmt.STAGE_IDS[stage]
    if stage == "classmap2":
        assert section.codes_chain.stage.args == (TINY["out_h"], TINY["out_w"], TINY["classes"])
    assert np.array_equal(read_model(data).class_maps.numpy(), maps)


def test_precomputed_targets_with_the_clip_frame_count_train_without_the_video(tmp_path):
    from tac_torch.chain import pair_targets
    from tac_torch.mask_warp_train import MaskWarpTrainer

    scorers, frames = tiny_scorers(), clip_frames(5)
    targets = pair_targets(frames, scorers, cache_dir=tmp_path)
    trainer = MaskWarpTrainer(tiny_config(), None, scorers, tmp_path / "a", targets=targets, frames=5,
                              show_progress=False)
    assert trainer.frames == 5 and trainer.class_maps.shape[0] == 3          # the odd last frame's map too
    from_video = MaskWarpTrainer(tiny_config(), frames, scorers, tmp_path / "b", show_progress=False)
    assert from_video.data_key == trainer.data_key                           # checkpoints fit either way
    with pytest.raises(InputError, match="7 frames make 3 pairs"):
        MaskWarpTrainer(tiny_config(), None, scorers, tmp_path / "c", targets=targets, frames=7, show_progress=False)
