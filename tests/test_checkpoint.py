"""Checkpoints: atomic, complete or absent; corrupt files and foreign recipes refused in one line."""

from __future__ import annotations

import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tac_core.cli import main  # noqa: E402
from tac_core.errors import TacError  # noqa: E402
from tac_torch.checkpoint import (CheckpointError, checkpoint_dir, latest_checkpoint, load_checkpoint,  # noqa: E402
                                  rng_state, save_checkpoint, set_rng_state)
from tac_torch.recipe import load_recipe  # noqa: E402


def _state(fingerprint="f" * 64):
    return {"recipe_fingerprint": fingerprint, "recipe_name": "demo", "data_key": "d",
            "weights": torch.arange(6.0), "rng": rng_state()}


def test_save_load_keeps_the_newest_and_no_partial_files(tmp_path):
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, step, _state(), keep=2)
    names = sorted(p.name for p in checkpoint_dir(tmp_path).iterdir())
    assert names == ["step-00000003.pt", "step-00000004.pt"]
    state = load_checkpoint(latest_checkpoint(tmp_path), "f" * 64, "d")
    assert state["step"] == 4 and torch.equal(state["weights"], torch.arange(6.0))


def test_rng_state_round_trips():
    state = rng_state()
    a = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(state)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_corrupt_and_foreign_checkpoints_are_refused(tmp_path):
    path = save_checkpoint(tmp_path, 5, _state())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated") as err:
        load_checkpoint(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert isinstance(err.value, TacError)
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match="uses recipe 'other'"):
        load_checkpoint(path, "e" * 64, recipe_name="other")
    with pytest.raises(CheckpointError, match="another clip"):
        load_checkpoint(path, "f" * 64, "x")
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_tac_train_resume_refuses_in_one_line_with_exit_2(tmp_path, capsys):
    video = tmp_path / "clip.mkv"
    video.write_bytes(b"\0")                 # never decoded: the checkpoint is refused first
    out = tmp_path / "out"
    args = ["train", str(video), "-o", str(out), "--preset", "demo", "--resume"]
    foreign = save_checkpoint(out, 7, _state(load_recipe("contest").fingerprint()))
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "different recipe" not in err and "uses recipe 'demo'" in err
    foreign.write_bytes(foreign.read_bytes()[:100])
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "corrupt or truncated" in err and str(foreign) in err
    assert [p.name for p in checkpoint_dir(out).iterdir()] == [foreign.name]
    assert not (out / "model.pt").exists()
