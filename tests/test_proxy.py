"""The proxy scorers: shipped files, the loader, robustness to noise, and the training command."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors.torch")

from tac_core import contract, registry  # noqa: E402
from tac_core.cli.main import main  # noqa: E402
from tac_core.files import sha256_file  # noqa: E402
from tac_core.scenes import SceneConfig  # noqa: E402
from tac_core.scenes.render import Scene  # noqa: E402
from tac_torch import proxy  # noqa: E402
from tac_torch.proxy_eval import noise_flips  # noqa: E402
from tac_torch.scorers import load_scorers  # noqa: E402

MAX_BYTES = 2_000_000


@pytest.fixture(scope="module")
def scorers():
    return load_scorers("proxy")


@pytest.fixture(scope="module")
def heldout_frame():
    """Frame 1 of held-out scene 0 (training scenes use seeds from 100 on)."""
    return Scene(SceneConfig(seed=0, seconds=1.0)).frame(1)[0]


def test_shipped_files_exist_and_fit_the_size_budget():
    paths = [proxy.WEIGHTS_DIR / name for name in proxy.FILES]
    assert all(p.is_file() for p in paths)
    assert sum(p.stat().st_size for p in paths) <= MAX_BYTES


def test_loader_reports_the_shipped_files_sha256(scorers):
    assert scorers.kind == "proxy" and not scorers.weights_verified
    for name in proxy.FILES:
        assert scorers.weights_sha256[name] == sha256_file(proxy.WEIGHTS_DIR / name)
    assert next(scorers.segnet.parameters()).dtype == torch.float32


def test_networks_take_the_contest_inputs(scorers):
    with torch.no_grad():
        seg = scorers.segnet(torch.rand(1, 3, *contract.MODEL_INPUT_HW) * 255)
        pose = scorers.posenet(torch.rand(2, 12, 192, 256) * 255)["pose"]
    assert seg.shape == (1, proxy.CLASSES, *contract.MODEL_INPUT_HW)
    assert pose.shape == (2, contract.POSE_OUTPUTS)
    assert torch.all(pose[:, proxy.POSE_DIMS:] == 0)


def test_outputs_and_distortion_follow_the_interface(scorers, heldout_frame):
    pairs = np.stack([heldout_frame, heldout_frame])[None]
    out = scorers.outputs(pairs)
    assert out["pose"].shape == (1, 12) and out["pose"].dtype == np.float32
    assert out["seg"].shape == (1, *contract.MODEL_INPUT_HW) and out["seg"].dtype == np.uint8
    pose, seg = scorers.distortion(out, scorers.outputs(pairs.copy()))
    assert pose.tolist() == [0.0] and seg.tolist() == [0.0]
    assert len(np.unique(out["seg"])) >= 3       # sees road, undrivable and the ego hood at least


def test_proxy_is_registered():
    items = registry.load().items["scorers"]
    assert items["proxy"].plugin == "torch"
    assert "scorers train-proxy" in registry.load().commands


def test_proxy_segnet_ignores_mild_noise_far_better_than_a_stand_in(scorers, heldout_frame):
    proxy_flips = noise_flips(scorers, heldout_frame, sigma=2.0)
    stand_in_flips = noise_flips(load_scorers("stand-in"), heldout_frame, sigma=2.0)
    assert proxy_flips < stand_in_flips / 3, (proxy_flips, stand_in_flips)


def test_train_command_writes_loadable_weights(tmp_path, capsys):
    out = tmp_path / "proxy"
    code = main(["scorers", "train-proxy", "-o", str(out), "--frames", "2", "--epochs", "1",
                 "--max-steps", "1", "--heldout-seeds", "0", "--data-dir", str(tmp_path / "data")])
    assert code == 0
    trained = load_scorers("proxy", out)
    assert set(trained.weights_sha256) == set(proxy.FILES)
    assert (out / "metrics.json").is_file()


def test_train_command_refuses_odd_frames(tmp_path, capsys):
    assert main(["scorers", "train-proxy", "-o", str(tmp_path / "x"), "--frames", "3"]) == 2
    assert "--frames" in capsys.readouterr().err


def test_the_training_data_cache_key_follows_the_encoder_options(monkeypatch):
    """Data encoded with other x265 options (frame threads change pixels) is not reused."""
    from tac_core.scenes import clip
    from tac_torch.proxy_train import DataConfig

    cfg = DataConfig(frames=4)
    key = cfg.key()
    assert key == DataConfig(frames=4).key() and key != DataConfig(frames=6).key()
    monkeypatch.setattr(clip, "X265_PARAMS", "log-level=error")
    assert cfg.key() != key
