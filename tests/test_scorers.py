"""The torch scorers: architectures, stand-in weights, weight-file checks, outputs, distortion, CLI."""

from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

from tac_core import contract, registry  # noqa: E402
from tac_core.cli.main import main  # noqa: E402
from tac_core.errors import InputError, WeightsError  # noqa: E402
from tac_core.files import sha256_file  # noqa: E402
from tac_core.interfaces import Scorer  # noqa: E402
from tac_torch import preprocess, scorer_nets  # noqa: E402
from tac_torch.scorers import (  # noqa: E402
    UnverifiedWeightsWarning, check_state_dict, load_scorers, load_weights)

SEG, POSE = contract.SEGNET_FILE, contract.POSENET_FILE
# Measured: with its step counters, the stand-in SegNet file holds exactly the
# official tensor bytes, but its JSON header is this much shorter than the official one's.
SEGNET_HEADER_SHORTFALL = 152


@pytest.fixture(scope="module")
def fresh():
    """Freshly built architectures with library-default weights, by file name."""
    return {SEG: scorer_nets.build(SEG), POSE: scorer_nets.build(POSE)}


@pytest.fixture(scope="module")
def stand_in():
    return load_scorers("stand-in", seed=0)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Stand-in files written by ``tac scorers export-stand-in`` (seed 0)."""
    folder = tmp_path_factory.mktemp("stand-in") / "weights"
    assert main(["scorers", "export-stand-in", str(folder), "--seed", "0"]) == 0
    return folder


@pytest.fixture(scope="module")
def small_pairs():
    """One pair of small random frames: the scorers resize every input to 384x512."""
    return np.random.default_rng(7).integers(0, 256, (1, 2, 60, 80, 3), dtype=np.uint8)


def _header(path) -> dict:
    import json

    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n])


# --- architectures and stand-in weights --------------------------------------

@pytest.mark.parametrize("name", [SEG, POSE])
def test_stand_in_has_the_architectures_keys_shapes_and_dtypes(fresh, name):
    expected = fresh[name].state_dict()
    state = scorer_nets.stand_in_state_dict(name, 0, with_batches_tracked=True, module=fresh[name])
    assert list(state) == list(expected)
    for key, tensor in expected.items():
        assert state[key].shape == tensor.shape, key
        assert state[key].dtype == tensor.dtype, key


def test_posenet_key_layout_and_buffers(fresh):
    state = fresh[POSE].state_dict()
    keys = ("summarizer.0.weight", "summarizer.2.block_a.1.bn.weight",
            "summarizer.2.block_b.5.bn.running_var", "hydra.resblock.block_a.0.weight",
            "hydra.in_layer.pose.weight", "hydra.res_layer.pose.2.bias",
            "hydra.final_layer.pose.weight", "vision.head.fc.weight")
    assert [k for k in keys if k not in state] == []
    assert state["hydra.final_layer.pose.weight"].shape == (contract.POSE_OUTPUTS, 32)
    assert state["vision.stem.0.conv_kxk.0.conv.weight"].shape[1] == contract.POSENET_IN_CHANNELS
    assert torch.equal(state["_mean"], torch.full((1, 12, 1, 1), 127.5))
    assert torch.equal(state["_std"], torch.full((1, 12, 1, 1), 63.75))
    assert sum(scorer_nets.is_batches_tracked(k) for k in state) == 88


def test_posenet_blocks_compute_the_documented_numerics():
    torch.manual_seed(0)
    block = scorer_nets.ResBlock(8).eval()
    for norm in (block.block_a[1], block.block_a[4], block.block_b[2], block.block_b[5]):
        norm.bn.running_mean.fill_(0.3)
        norm.bn.running_var.fill_(2.0)
        norm.bn.weight.data.fill_(1.5)
        norm.bn.bias.data.fill_(-0.2)
    x = torch.randn(3, 8)
    with torch.no_grad():
        y = block.block_a[1](x)
        assert torch.allclose(y, (x - 0.3) / (2.0 + 1e-3) ** 0.5 * 1.5 - 0.2, atol=1e-6)
        # The official block_b opens with an in-place ReLU, so the second branch and the
        # residual both see the rectified first sum.
        a = torch.relu(x + block.block_a(x))
        assert torch.equal(block(x), torch.relu(a + block.block_b(a)))


def test_stand_in_is_seeded_and_leaves_the_global_rng_alone(fresh):
    torch.manual_seed(1)
    before = torch.get_rng_state()
    a = scorer_nets.stand_in_state_dict(POSE, 5, module=fresh[POSE])
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(2)
    b = scorer_nets.stand_in_state_dict(POSE, 5, module=fresh[POSE])
    c = scorer_nets.stand_in_state_dict(POSE, 6, module=fresh[POSE])
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["summarizer.0.weight"], c["summarizer.0.weight"])


# --- exported files ----------------------------------------------------------

def test_exported_files_load_strictly_as_the_official_loader_does(exported, fresh):
    for name in (SEG, POSE):
        module = scorer_nets.build(name)
        result = module.load_state_dict(safetensors_torch.load_file(str(exported / name)), strict=True)
        assert not result.missing_keys and not result.unexpected_keys


def test_exported_sizes_match_the_official_files(exported):
    pose_keys = _header(exported / POSE)
    seg_keys = _header(exported / SEG)
    assert (exported / POSE).stat().st_size == contract.POSENET_BYTES
    assert not any(scorer_nets.is_batches_tracked(k) for k in pose_keys)
    assert (exported / SEG).stat().st_size == contract.SEGNET_BYTES - SEGNET_HEADER_SHORTFALL
    assert sum(scorer_nets.is_batches_tracked(k) for k in seg_keys) == 78


def test_exported_bytes_round_trip_and_match_the_stand_in_sha(exported, stand_in):
    state = safetensors_torch.load_file(str(exported / POSE))
    again = scorer_nets.stand_in_state_dict(POSE, 0)
    assert state.keys() == again.keys()
    assert all(torch.equal(state[k], again[k]) for k in state)
    for name in (SEG, POSE):
        assert sha256_file(exported / name) == stand_in.weights_sha256[name]


def test_other_files_load_as_contest_with_a_warning_and_unverified(exported, stand_in, small_pairs):
    with pytest.warns(UnverifiedWeightsWarning, match="sha256 differs"):
        scorers = load_scorers("contest", exported)
    assert scorers.kind == "contest" and scorers.weights_verified is False
    assert scorers.weights_sha256 == stand_in.weights_sha256
    ours, theirs = scorers.outputs(small_pairs), stand_in.outputs(small_pairs)
    assert np.array_equal(ours["pose"], theirs["pose"])
    assert np.array_equal(ours["seg"], theirs["seg"])


# --- refused weight files ----------------------------------------------------

def _save(path, state):
    safetensors_torch.save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def test_a_file_missing_a_weight_is_refused_naming_file_and_key(tmp_path, fresh):
    state = scorer_nets.stand_in_state_dict(POSE, 0, module=fresh[POSE])
    del state["hydra.final_layer.pose.weight"]
    path = _save(tmp_path / POSE, state)
    with pytest.raises(WeightsError) as err:
        load_weights(fresh[POSE], path)
    assert str(path) in str(err.value)
    assert "1 missing (hydra.final_layer.pose.weight)" in str(err.value)


@pytest.mark.parametrize("with_counters", [True, False])
def test_batchnorm_step_counters_may_be_present_or_absent(fresh, with_counters):
    state = scorer_nets.stand_in_state_dict(POSE, 0, with_batches_tracked=with_counters,
                                            module=fresh[POSE])
    assert any(scorer_nets.is_batches_tracked(k) for k in state) == with_counters
    check_state_dict("posenet", state, fresh[POSE])


def test_wrong_shapes_and_unexpected_keys_are_refused_with_a_count(fresh):
    state = scorer_nets.stand_in_state_dict(POSE, 0, module=fresh[POSE])
    state["hydra.final_layer.pose.bias"] = torch.zeros(6)
    for i in range(7):
        state[f"extra.{i}"] = torch.zeros(1)
    with pytest.raises(WeightsError) as err:
        check_state_dict("x/posenet.safetensors", state, fresh[POSE])
    message = str(err.value)
    assert message.startswith("x/posenet.safetensors: ")
    assert "hydra.final_layer.pose.bias (6,) instead of (12,)" in message
    assert "7 unexpected (extra.0, extra.1, extra.2, extra.3 and 3 more)" in message


def test_unreadable_or_absent_files_are_weights_errors(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_scorers("contest", tmp_path / "nowhere")
    with pytest.raises(WeightsError, match="need the folder"):
        load_scorers("contest")
    with pytest.raises(WeightsError, match=f"{SEG}: weight file not found"):
        load_scorers("contest", tmp_path)
    (tmp_path / SEG).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(WeightsError, match=f"{SEG}: not a readable safetensors file"):
        load_scorers("contest", tmp_path)


# --- outputs and distortion --------------------------------------------------

def test_outputs_follow_the_interface(stand_in, small_pairs):
    assert isinstance(stand_in, Scorer)
    out = stand_in.outputs(small_pairs)
    assert out["pose"].shape == (1, 12) and out["pose"].dtype == np.float32
    assert out["seg"].shape == (1, 384, 512) and out["seg"].dtype == np.uint8
    assert np.isfinite(out["pose"]).all() and out["seg"].max() < contract.SEGNET_CLASSES
    readonly = small_pairs.copy()
    readonly.flags.writeable = False
    assert np.array_equal(stand_in.outputs(torch.from_numpy(small_pairs))["pose"], out["pose"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(stand_in.outputs(readonly)["pose"], out["pose"])


def test_seg_leads_are_the_gap_between_segnets_two_best_classes(stand_in, small_pairs):
    pairs = np.concatenate([small_pairs, small_pairs[:, ::-1], small_pairs])
    leads = stand_in.seg_leads(pairs, batch_pairs=2)
    assert leads.shape == (3, 384, 512) and leads.dtype == np.float16 and (leads >= 0).all()
    with torch.inference_mode():                 # by hand, on the last frame of the second pair
        frames = preprocess.frames_float(preprocess.as_pairs_tensor(pairs[1:2]))
        logits = stand_in.segnet(preprocess.segnet_input(frames)).float()
    top2 = logits.topk(2, dim=1).values
    assert np.allclose(leads[1], (top2[0, 0] - top2[0, 1]).numpy(), atol=2e-3, rtol=1e-3)
    assert np.allclose(leads[0], leads[2], atol=1e-2) and not np.allclose(leads[0], leads[1], atol=0.1)
    with pytest.raises(InputError, match="no pairs"):
        stand_in.seg_leads(pairs[:0])


@pytest.mark.parametrize("bad", [np.zeros((1, 2, 8, 8, 3), np.float32),
                                 np.zeros((1, 3, 8, 8, 3), np.uint8),
                                 np.zeros((2, 8, 8, 3), np.uint8)])
def test_outputs_refuse_malformed_pairs(stand_in, bad):
    with pytest.raises(InputError):
        stand_in.outputs(bad)


def test_distortion_of_identical_outputs_is_exactly_zero(stand_in, small_pairs):
    out = stand_in.outputs(small_pairs)
    pose, seg = stand_in.distortion(out, out)
    assert pose.dtype == np.float32 and seg.dtype == np.float32
    assert pose.tolist() == [0.0] and seg.tolist() == [0.0]


def test_distortion_is_the_official_formula(stand_in):
    rng = np.random.default_rng(3)
    a = {"pose": rng.normal(size=(3, 12)).astype(np.float32),
         "seg": rng.integers(0, 5, (3, 4, 6)).astype(np.uint8)}
    b = {"pose": a["pose"].copy(), "seg": a["seg"].copy()}
    b["pose"][:, 6:] += 100.0                     # unscored outputs change nothing
    b["pose"][1, 2] += 3.0
    b["seg"][2, 0, :3] = (b["seg"][2, 0, :3] + 1) % 5
    for array in (*a.values(), *b.values()):
        array.flags.writeable = False               # as memory-mapped caches hand them over
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pose, seg = stand_in.distortion(a, b)
    assert pose.tolist() == [0.0, pytest.approx(1.5), 0.0]
    assert seg.tolist() == [0.0, 0.0, np.float32(3 / 24)]
    ta, tb = torch.tensor(a["pose"]), torch.tensor(b["pose"])
    assert np.array_equal(pose, (ta[..., :6] - tb[..., :6]).pow(2).mean(dim=1).numpy())


def test_distortion_refuses_mismatched_outputs(stand_in):
    a = {"pose": np.zeros((2, 12), np.float32), "seg": np.zeros((2, 4, 4), np.uint8)}
    with pytest.raises(InputError, match="pose"):
        stand_in.distortion(a, {"pose": np.zeros((3, 12), np.float32), "seg": a["seg"]})
    with pytest.raises(InputError, match="seg"):
        stand_in.distortion(a, {"pose": a["pose"]})


# --- registration and CLI ----------------------------------------------------

def test_scorers_are_registered():
    items = registry.load().items["scorers"]
    assert {"contest", "stand-in"} <= items.keys()
    assert items["stand-in"].plugin == "torch"
    assert "scorers export-stand-in" in registry.load().commands


@pytest.mark.parametrize("args", [["--seed", "-1"], []])
def test_export_refuses_a_bad_dir_or_seed(tmp_path, capsys, args):
    target = tmp_path / "a-file"
    target.write_text("not a folder")
    folder = target if not args else tmp_path / "new"
    assert main(["scorers", "export-stand-in", str(folder), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tac: error: ") and "\n" not in err
    assert not (tmp_path / "new").exists()


def test_unknown_kind_and_bad_seed_are_refused():
    from tac_core.errors import BackendError

    with pytest.raises(BackendError):
        load_scorers("proxy-of-nothing")
    with pytest.raises(InputError):
        load_scorers("stand-in", seed=-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputError):
            load_scorers("stand-in", device="not-a-device")
