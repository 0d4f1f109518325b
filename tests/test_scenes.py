"""The synthetic driving scenes: determinism, ground truth, poses, written clips and the CLI."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from tac_core import contract
from tac_core.cli.main import main
from tac_core.errors import InputError
from tac_core.scenes import (SceneConfig, default_clip, generate, iter_class_maps, poses, read_ground_truth,
                             write_clip)
from tac_core.scenes.camera import rot_x, rot_y, rot_z, rotvec_from_matrix
from tac_core.scenes.objects import _to_camera
from tac_core.scenes.render import Scene
from tac_core.video import decode_frames

H, W = contract.CAMERA_HW
ROAD, MARKING, UNDRIVABLE, MOVABLE, EGO = range(5)


@pytest.fixture(scope="module")
def clip8():
    """Eight frames of the default scene (seed 0), frames and class maps."""
    pairs = list(generate(SceneConfig(seed=0, seconds=0.4)))
    return np.stack([f for f, _ in pairs]), np.stack([c for _, c in pairs])


def test_same_seed_gives_same_bytes_whatever_the_global_rng(clip8):
    np.random.seed(1234)
    random.seed(99)
    np.random.random(100)
    again = list(generate(SceneConfig(seed=0, seconds=0.15)))
    for k, (frame, cls) in enumerate(again):
        assert frame.tobytes() == clip8[0][k].tobytes()
        assert cls.tobytes() == clip8[1][k].tobytes()
    other = next(generate(SceneConfig(seed=1, seconds=0.05)))
    assert other[0].tobytes() != clip8[0][0].tobytes()


def test_rendering_in_child_processes_gives_the_same_bytes(clip8):
    from tac_core.scenes.clip import rendered

    config = SceneConfig(seed=0, seconds=0.15)
    for k, (frame, cls) in enumerate(rendered(config, workers=2)):
        assert frame.tobytes() == clip8[0][k].tobytes() and cls.tobytes() == clip8[1][k].tobytes()
    assert k == 2


def test_frames_have_the_contest_shape(clip8):
    frames, classes = clip8
    assert frames.shape == (8, H, W, 3) and frames.dtype == np.uint8
    assert classes.shape == (8, H, W) and classes.dtype == np.uint8


def test_class_ids_are_the_five_and_each_appears(clip8):
    _, classes = clip8
    assert classes.max() <= EGO
    for cls in classes:
        assert set(np.unique(cls)) == {ROAD, MARKING, UNDRIVABLE, MOVABLE, EGO}


def test_hood_is_ego_at_the_bottom_centre_and_fixed(clip8):
    frames, classes = clip8
    hood = classes[0] == EGO
    assert hood[-1, W // 2] and hood[H - 100, W // 2] and not hood[H // 2, W // 2]
    assert not hood[:H // 2].any()
    for cls in classes[1:]:
        assert np.array_equal(cls == EGO, hood)
    still = np.abs(frames[1:, hood].astype(np.int16) - frames[0, hood]).mean()
    assert still < 3.0                      # only sensor noise changes on the hood


def test_sky_at_the_top_is_undrivable_and_blue(clip8):
    frames, classes = clip8
    assert (classes[:, :60] == UNDRIVABLE).all()
    top = frames[:, :60].reshape(-1, 3).mean(axis=0)
    assert top[2] > top[0] + 20             # blue above red


def test_road_in_front_below_the_horizon(clip8):
    _, classes = clip8
    for cls in classes:
        assert cls[H - 140, W // 2] == ROAD
        band = cls[H // 2 + 40:H - 140, W // 2 - 100:W // 2 + 100]
        assert (band == ROAD).mean() > 0.5
        assert (cls[: H // 2 - 20] != ROAD).all()


def test_lane_markings_and_vehicles_are_there(clip8):
    _, classes = clip8
    assert all((cls == MARKING).sum() > 500 for cls in classes)
    assert any((cls == MOVABLE).sum() > 200 for cls in classes)


def test_no_vehicles_when_traffic_is_off():
    _, cls = next(generate(SceneConfig(seed=0, seconds=0.05, vehicles_per_lane=0)))
    assert not (cls == MOVABLE).any()


def test_poses_move_forward_at_the_ego_speed():
    config = SceneConfig(seed=3, seconds=2.0)
    p = poses(config)
    assert p.shape == (config.pairs, 6) and p.dtype == np.float64
    ego = Scene(config).ego
    speeds = np.array([ego.state((2 * i + 0.5) / config.fps).speed for i in range(config.pairs)])
    assert np.allclose(p[:, 2], speeds / config.fps, rtol=0.01)
    assert (np.abs(p[:, :2]) < 0.2 * p[:, 2:3]).all()
    assert (np.abs(p[:, 3:]) < 0.02).all()
    assert 10 / config.fps <= p[:, 2].min() and p[:, 2].max() <= 30 / config.fps


@pytest.mark.parametrize("curvature, tol", [(0.0, 1e-6), (1 / 350, 0.03)])
def test_poses_map_static_points_between_the_rendered_cameras(curvature, tol):
    """camera a sees a static point at R p_b + t, where camera b sees it at p_b (module ``motion``)."""
    config = SceneConfig(seed=5, seconds=2.0, max_curvature=curvature)
    scene = Scene(config)
    p = poses(config)
    rng = np.random.default_rng(0)
    for i in (0, 7, 19):
        a, b = (scene.ego.state(k / config.fps) for k in (2 * i, 2 * i + 1))
        s = a.s + rng.uniform(5, 60, 20)
        d, up = rng.uniform(-8, 8, 20), rng.uniform(0, 5, 20)
        pa, pb = (_to_camera(s, d, up, st, scene.road, rot_x(st.pitch) @ rot_z(st.roll)) for st in (a, b))
        angle = np.linalg.norm(p[i, 3:])
        axis = p[i, 3:] / angle
        k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        r = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k
        assert np.abs(pb @ r.T + p[i, :3] - pa).max() < tol


def test_rotation_vector_signs_follow_the_axes():
    assert rotvec_from_matrix(rot_y(0.01))[1] == pytest.approx(0.01)       # turning right: +r_y
    assert rotvec_from_matrix(rot_x(-0.02))[0] == pytest.approx(-0.02)     # nose down: -r_x
    assert rotvec_from_matrix(rot_z(0.003))[2] == pytest.approx(0.003)     # right side down: +r_z
    assert rot_y(0.1)[0, 2] > 0 and rot_x(0.1)[1, 2] < 0                   # forward axis goes right / up


def test_written_clip_decodes_close_to_the_generated_frames(tmp_path):
    config = SceneConfig(seed=2, seconds=0.2)
    generated = list(generate(config))
    ticks = []
    result = write_clip(tmp_path / "clip.mkv", config, progress=ticks.append)
    assert result["frames"] == 4 and len(ticks) == 4
    decoded = list(decode_frames(tmp_path / "clip.mkv"))
    assert len(decoded) == 4
    for (frame, _), back in zip(generated, decoded):
        assert back.shape == (H, W, 3)
        assert np.abs(back.astype(np.int16) - frame).mean() < 3.0
    truth = read_ground_truth(tmp_path / "clip.npz")
    assert truth.frames == 4 and truth.config == config
    assert np.array_equal(truth.poses, poses(config))
    maps = list(iter_class_maps(tmp_path / "clip.npz"))
    assert all(np.array_equal(m, c) for m, (_, c) in zip(maps, generated)) and len(maps) == 4
    with np.load(tmp_path / "clip.npz") as data:
        assert data["class_maps"].shape == (4, H, W)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["clip.mkv", "clip.npz"]


def _decoded_with_pool(frames, folder, pool: int, options) -> bytes:
    from tac_core.video import encode_frames

    path = folder / f"pool{pool}.mkv"
    options = {**options, "x265-params": f"{options['x265-params']}:pools={pool}"}
    encode_frames(path, iter(frames), codec="libx265", fps=contract.FPS, options=options)
    return b"".join(f.tobytes() for f in decode_frames(path))


def test_clip_pixels_do_not_depend_on_the_machines_cores(clip8, tmp_path):
    """x265 sizes its frame threads by the thread pool (the cores): the clip's options pin them."""
    from tac_core.scenes.clip import x265_options

    frames = clip8[0]
    one, many = (_decoded_with_pool(frames, tmp_path, pool, x265_options()) for pool in (1, 8))
    assert one == many
    unpinned = {**x265_options(), "x265-params": "log-level=error"}
    assert _decoded_with_pool(frames, tmp_path, 8, unpinned) != one   # what the pin prevents


def test_interrupted_write_leaves_no_file(tmp_path):
    def stop(_):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_clip(tmp_path / "clip.mkv", SceneConfig(seconds=0.2), progress=stop)
    assert list(tmp_path.iterdir()) == []


def test_default_clip_is_made_once_and_reused(tmp_path, monkeypatch):
    path = default_clip(tmp_path, seconds=0.1)
    stamp = path.stat().st_mtime_ns
    assert path.suffix == ".mkv" and path.with_suffix(".npz").is_file()
    assert default_clip(tmp_path, seconds=0.1) == path and path.stat().st_mtime_ns == stamp
    assert default_clip(tmp_path, seconds=0.1, seed=1) != path
    from tac_core.scenes import clip

    monkeypatch.setattr(clip, "X265_PARAMS", "log-level=error")   # other encoder options: another clip
    assert default_clip(tmp_path, seconds=0.1) != path


@pytest.mark.parametrize("fields", [{"seconds": -1.0}, {"seconds": 0.0}, {"lanes": 0}, {"seed": -3},
                                    {"speed_min": 40.0, "speed_max": 20.0}, {"fps": 2.5},
                                    {"seconds": float("nan")}, {"seconds": 0.01}])
def test_bad_config_is_an_input_error(fields):
    with pytest.raises(InputError):
        SceneConfig(**fields)


def test_config_round_trips_through_json():
    config = SceneConfig(seed=7, seconds=3.5, lanes=2)
    assert SceneConfig.from_json(config.to_json()) == config
    with pytest.raises(InputError):
        SceneConfig.from_json(json.dumps({"seed": 1, "colour": "red"}))


def test_cli_writes_the_clip_and_its_ground_truth(tmp_path, capsys):
    out = tmp_path / "clip.mkv"
    assert main(["scene", "--seconds", "0.1", "--seed", "4", "-o", str(out), "--quiet", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["frames"] == 2 and out.is_file() and (tmp_path / "clip.npz").is_file()


@pytest.mark.parametrize("args, words", [(["--seconds", "-2"], "seconds"), (["--suffix", ".avi"], ".avi"),
                                         (["--folder", "missing"], "does not exist")])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, words):
    out = tmp_path / "clip.mkv"
    if args[0] == "--suffix":
        out, args = tmp_path / "clip.avi", []
    elif args[0] == "--folder":
        out, args = tmp_path / "missing" / "clip.mkv", []
    assert main(["scene", "--quiet", "-o", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err
    assert list(tmp_path.iterdir()) == []
