"""Training: a few steps lower the loss; an interrupted and resumed run equals a straight one."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from tac_core.errors import InputError  # noqa: E402
from tac_torch.chain import camera_pairs_uint8, pair_targets  # noqa: E402
from tac_torch.checkpoint import latest_checkpoint, load_checkpoint  # noqa: E402
from tac_torch.recipe import recipe_from_dict  # noqa: E402
from tac_torch.renderers import HnervPair, init_latents, make_spec  # noqa: E402
from tac_torch.scorers import TorchScorers, load_scorers  # noqa: E402
from tac_torch.train import MatrixMuon, Trainer, select_final  # noqa: E402

SPEC = {"stages": 2, "out_h": 24, "out_w": 32, "width_0": 4, "width_1": 6, "width_2": 6, "latent_dim": 4}
CAMERA = (48, 64)                      # a reduced camera: the scorers resize to 384x512 anyway


class _TinyPose(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(12, 8, 4, stride=4)
        self.head = nn.Linear(8, 12)

    def forward(self, x):
        return {"pose": self.head(torch.tanh(self.conv(x / 64.0)).mean(dim=(2, 3)))}


def tiny_scorers(seed: int = 0) -> TorchScorers:
    """Seeded one-layer scorers with the contest interfaces: fast plumbing for training tests."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        seg, pose = nn.Conv2d(3, 5, 3, padding=1), _TinyPose()
        with torch.no_grad():
            seg.weight.mul_(1 / 64)
    return TorchScorers("stand-in", seg, pose, {"tiny": str(seed)}, False, "cpu")


def tiny_recipe(stages=None, **head) -> "Recipe":  # noqa: F821
    stages = stages or [{"name": "float", "steps": 2, "lr_decoder": 1e-2, "lr_latents": 0.1},
                        {"name": "qat", "steps": 2, "qat": True, "lr_decoder": 1e-3}]
    return recipe_from_dict({"recipe": {"name": "tiny", "batch_pairs": 1, "checkpoint_every": 1,
                                        "camera_h": CAMERA[0], "camera_w": CAMERA[1], **head},
                             "spec": SPEC, "stage": stages})


def known_pairs(n: int, seed: int = 5):
    """uint8 pairs rendered from known latents by a seeded decoder: a clip the renderer can fit."""
    net = HnervPair(make_spec(**SPEC), seed=seed)
    with torch.no_grad():
        return camera_pairs_uint8(net(init_latents(n, make_spec(**SPEC), seed=seed) * 20), CAMERA).numpy()


def test_a_few_steps_lower_the_loss_with_stand_in_scorers(tmp_path):
    scorers = load_scorers("stand-in", seed=0)
    targets = pair_targets(known_pairs(1), scorers, cache_dir=tmp_path)
    recipe = tiny_recipe([{"name": "float", "steps": 3, "lr_decoder": 3e-3, "lr_muon": 0.01,
                           "lr_latents": 0.1, "rate": 0.0}])
    trainer = Trainer(recipe, None, scorers, tmp_path / "out", targets=targets, show_progress=False)
    losses = [trainer.train_step()["loss"] for _ in range(3)]
    with torch.no_grad():
        final = float(trainer.losses(trainer.pairs_at(0), recipe.stages[0])["loss"])
    assert final < losses[0], (losses, final)


def _weights(trainer):
    return {**{k: v.clone() for k, v in trainer.net.state_dict().items()}, "latents": trainer.latents.detach().clone(),
            **{f"ema.{k}": v.clone() for k, v in trainer.ema.items()}}


def test_interrupted_and_resumed_equals_straight_through(tmp_path):
    scorers, recipe = tiny_scorers(), tiny_recipe()
    pairs = known_pairs(3).reshape(-1, *CAMERA, 3)
    score = lambda c: float(c.latents.abs().sum())    # noqa: E731  (cheap, deterministic)
    straight = Trainer(recipe, pairs, scorers, tmp_path / "a", show_progress=False)
    done = straight.run(score_fn=score)
    assert done.finished and done.step == 4 and done.model_path.is_file()
    assert set(done.scores) == {"float", "qat"}

    first = Trainer(recipe, pairs, scorers, tmp_path / "b", show_progress=False)
    part = first.run(stop_after=1, score_fn=score)
    assert not part.finished and part.step == 1 and part.checkpoint == latest_checkpoint(tmp_path / "b")
    with pytest.raises(InputError, match="--resume"):
        Trainer(recipe, pairs, scorers, tmp_path / "b", show_progress=False).run()
    resumed = Trainer(recipe, pairs, scorers, tmp_path / "b", show_progress=False)
    assert resumed.run(resume=True, score_fn=score).finished
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    model_a = torch.load(done.model_path, weights_only=True)
    model_b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)
    assert model_a["chosen"] == model_b["chosen"] and torch.equal(model_a["latents"], model_b["latents"])

    other = tiny_recipe(seed=9)
    with pytest.raises(InputError, match="different|uses recipe"):
        Trainer(other, pairs, scorers, tmp_path / "b", show_progress=False).run(resume=True)
    assert load_checkpoint(latest_checkpoint(tmp_path / "b"))["step"] == 4


def test_matrix_muon_updates_conv_weights_in_place():
    conv = nn.Conv2d(3, 4, 3)
    before = conv.weight.detach().clone()
    opt = MatrixMuon([conv.weight], lr=0.1, weight_decay=0.0)
    conv(torch.randn(1, 3, 5, 5)).square().sum().backward()
    opt.step()
    assert not torch.equal(before, conv.weight.detach())
    assert opt.views[0].data_ptr() == conv.weight.data_ptr()


def test_select_final_takes_the_lowest_score():
    from tac_torch.train import Candidate

    cands = [Candidate(n, {}, torch.zeros(1)) for n in ("a", "b", "c")]
    best, scores = select_final(cands, lambda c: {"a": 2.0, "b": 1.0, "c": 3.0}[c.name])
    assert best.name == "b" and scores == {"a": 2.0, "b": 1.0, "c": 3.0}
    with pytest.raises(InputError):
        select_final([], lambda c: 0.0)


def test_a_pixel_warm_up_stage_fits_the_frames_without_running_the_scorers(tmp_path):
    from tac_torch.chain import Targets
    from tac_torch.train import pixel_targets

    class Refuse(nn.Module):
        def forward(self, x):
            raise AssertionError("a pure pixel stage must not run the scorers")

    scorers = TorchScorers("stand-in", Refuse(), Refuse(), {"none": "0"}, False, "cpu")
    frames = known_pairs(2).reshape(-1, *CAMERA, 3)
    recipe = tiny_recipe([{"name": "pixels", "steps": 8, "lr_decoder": 1e-2, "lr_muon": 0.02,
                           "lr_latents": 0.1, "pixel": 1.0, "seg": 0.0, "pose": 0.0, "rate": 0.0}])
    trainer = Trainer(recipe, None, scorers, tmp_path,
                      targets=Targets(np.zeros((2, 384, 512), np.uint8), np.zeros((2, 12), np.float32)),
                      show_progress=False)
    trainer.pixel_targets = pixel_targets(frames, recipe.renderer_spec())
    assert trainer.pixel_targets.shape == (2, 2, 3, SPEC["out_h"], SPEC["out_w"])
    first = trainer.train_step()
    for _ in range(7):
        last = trainer.train_step()
    assert last["pixel"] < first["pixel"] and last["seg"] == 0.0
