"""The pose-field sidecar: the field and where it lands (the first frame only), its archive round trip
in both renderers, the checks on its codes, the encoder's linear model of the camera chain, and the
fit that keeps a pair's codes only where its exact pose error falls."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from test_train import tiny_scorers  # noqa: E402

from tac_core import contract  # noqa: E402
from tac_core.architectures import hnerv_pair as hnerv_arch  # noqa: E402
from tac_core.architectures import mask_warp as mask_arch  # noqa: E402
from tac_core.architectures import pose_field  # noqa: E402
from tac_core.archive import QuantSpec, quantize, read_archive, write_archive  # noqa: E402
from tac_core.errors import ArchiveError, InputError  # noqa: E402
from tac_torch import mask_warp, mask_warp_export, mask_warp_io, preprocess, renderers  # noqa: E402
from tac_torch import export as hnerv_export  # noqa: E402
from tac_torch.archive_io import read_model as read_hnerv  # noqa: E402
from tac_torch.chain import Targets  # noqa: E402
from tac_torch.frames import (add_pose_field, add_sidecars, camera_pairs_uint8, upsampled_pose_field)  # noqa: E402
from tac_torch.pose_field import FieldSettings, fit_pose_field, response_map, round_codes  # noqa: E402

CAMERA = (48, 64)                       # a reduced camera: the scorers resize to 384x512 anyway
RENDER = (16, 24)
HNERV = renderers.make_spec(stages=2, out_h=16, out_w=24, latent_dim=4, width_0=4, width_1=4, width_2=4)
MASK = mask_arch.make_spec(out_h=16, out_w=24, levels=1, width_0=4, width_1=6, out_width=4, flow_down=2,
                           flow_width=4, residual_width=4)


def grey_pairs(p: int, hw=RENDER, seed: int = 0, spread: float = 40.0) -> torch.Tensor:
    """Float pairs ``(p, 2, 3, h, w)`` around mid-grey, far from the clamps."""
    gen = torch.Generator().manual_seed(seed)
    return 128.0 + spread * (torch.rand(p, 2, 3, *hw, generator=gen) - 0.5)


def random_codes(p: int, lo: int = -127, hi: int = 127, seed: int = 0, zero_pairs=()) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    codes = torch.randint(lo, hi + 1, pose_field.shape(p), generator=gen).to(torch.int8)
    for i in zero_pairs:
        codes[i] = 0
    return codes


def reference_upsample(codes: np.ndarray, h: int, w: int) -> np.ndarray:
    """The documented decoding, written out: sample (y + 0.5) * 3 / h - 0.5 (and likewise along x),
    clamped to the grid, bilinear between the neighbouring cells."""
    gh, gw = pose_field.GRID

    def taps(n, g):
        s = np.clip((np.arange(n) + 0.5) * g / n - 0.5, 0, g - 1)
        i0 = np.floor(s).astype(int)
        return i0, np.minimum(i0 + 1, g - 1), s - i0

    y0, y1, fy = taps(h, gh)
    x0, x1, fx = taps(w, gw)
    c = codes.astype(np.float64) * pose_field.STEP
    top = c[..., y0, :][..., x0] * (1 - fx) + c[..., y0, :][..., x1] * fx
    bottom = c[..., y1, :][..., x0] * (1 - fx) + c[..., y1, :][..., x1] * fx
    return top * (1 - fy)[:, None] + bottom * fy[:, None]


# --- the field -----------------------------------------------------------------------

def test_no_codes_return_the_frames_themselves_and_zero_codes_change_nothing():
    frames = grey_pairs(3)
    assert add_pose_field(frames, None) is frames
    assert add_sidecars(frames, None, None) is frames
    assert torch.equal(add_pose_field(frames, torch.zeros(pose_field.shape(3), dtype=torch.int8)), frames)


def test_a_non_zero_field_moves_the_first_frame_only():
    frames = grey_pairs(3)
    codes = random_codes(3, -20, 20, zero_pairs=[1])
    out = add_pose_field(frames, codes)
    assert out.shape == frames.shape
    assert torch.equal(out[:, 1], frames[:, 1])                     # the second frames, bit for bit
    assert torch.equal(out[1], frames[1])                           # an all-zero pair is untouched
    moved = (out[:, 0] - frames[:, 0]).abs().flatten(1).amax(1)
    assert moved[0] > 1 and moved[2] > 1


@pytest.mark.parametrize("hw", [(16, 24), (7, 13), (9, 12), (874 // 8, 1164 // 8)])
def test_the_field_is_the_documented_bilinear_upsampling(hw):
    codes = random_codes(2, seed=3)
    got = upsampled_pose_field(codes, hw)
    assert got.shape == (2, pose_field.CHANNELS, *hw)
    assert np.allclose(got.numpy(), reference_upsample(codes.numpy(), *hw), atol=1e-4)


@pytest.mark.parametrize("r", range(pose_field.GRID[0]))
@pytest.mark.parametrize("c", range(pose_field.GRID[1]))
def test_one_code_moves_its_own_cell_most(r, c):
    h, w = 30, 40                                                   # three cells down, four across
    codes = torch.zeros(pose_field.shape(1), dtype=torch.int8)
    codes[0, 1, r, c] = 50
    frames = grey_pairs(1, (h, w))
    diff = (add_pose_field(frames, codes) - frames)[0, 0]
    assert torch.equal(diff[0], torch.zeros_like(diff[0])) and torch.equal(diff[2], torch.zeros_like(diff[2]))
    y, x = divmod(int(diff[1].argmax()), w)
    assert r * h // 3 <= y < (r + 1) * h // 3 and c * w // 4 <= x < (c + 1) * w // 4, (y, x)
    cells = diff[1].view(3, h // 3, 4, w // 4).mean(dim=(1, 3))
    assert int(cells.argmax()) == r * 4 + c
    assert 40 < float(diff[1].max()) <= 50 * pose_field.STEP + 1e-4 and float(diff[1].min()) >= 0


def test_codes_of_the_wrong_shape_are_input_errors():
    frames = grey_pairs(2)
    for shape in [(2, 3, 4, 3), (1, 3, 3, 4), (2, 3, 12), (2, 1, 3, 4)]:
        with pytest.raises(InputError, match="pose-field"):
            add_pose_field(frames, torch.zeros(shape, dtype=torch.int8))
    with pytest.raises(InputError):
        add_pose_field(frames[:, 0], torch.zeros(pose_field.shape(2), dtype=torch.int8))


# --- checks on the codes --------------------------------------------------------------

def test_check_codes_takes_the_range_and_rejects_the_rest():
    ok = np.full(pose_field.shape(2), 127, np.int16)
    ok[1] = -127
    out = pose_field.check_codes(ok, 2)
    assert out.dtype == np.int8 and np.array_equal(out, ok)
    for bad_value in (128, -128, 1000):
        bad = np.zeros(pose_field.shape(2), np.int16)
        bad[1, 2, 0, 3] = bad_value
        with pytest.raises(InputError, match="-127..127"):
            pose_field.check_codes(bad, 2)
    for shape in [(3, 3, 3, 4), (2, 3, 4, 3), (2, 36), (2, 2, 3, 4)]:
        with pytest.raises(InputError, match="shape"):
            pose_field.check_codes(np.zeros(shape, np.int8), 2)


def test_both_schemas_end_with_the_bias_then_the_pose_field():
    for arch, spec in ((hnerv_arch, HNERV), (mask_arch, MASK)):
        layout = arch.archive_layout({**spec, "frames": 5})
        assert layout[-2:] == [("output_bias", (3, 2, 3)), ("pose_field", (3, 3, 3, 4))], arch.__name__


def hnerv_tensors(pairs: int):
    net = renderers.HnervPair(HNERV, seed=0)
    return net, hnerv_export.archive_tensors(net, renderers.init_latents(pairs, HNERV))


def test_the_writer_refuses_a_field_of_another_shape_through_the_schema():
    net, tensors = hnerv_tensors(2)
    tensors["pose_field"] = quantize(np.ones((2, 3, 4, 3), np.int8), QuantSpec("raw"))
    with pytest.raises(ArchiveError, match="pose_field"):
        write_archive(tensors, architecture=renderers.architecture(HNERV, 4), schema=renderers.archive_schema(HNERV))
    with pytest.raises(InputError, match="pose_field"):
        hnerv_export.build_archive(net, renderers.init_latents(2, HNERV), 4,
                                   pose_field=torch.ones(2, 3, 4, 3, dtype=torch.int8))


@pytest.mark.parametrize("field", [np.ones((2, 3, 4, 3), np.int8), np.ones((3, 3, 3, 4), np.int8),
                                   np.full((2, 3, 3, 4), -128, np.int8)], ids=["grid", "pairs", "range"])
def test_readers_reject_a_stored_field_that_does_not_fit(field):
    # a named archive (no schema) can hold what the schema cannot express
    _, tensors = hnerv_tensors(2)
    tensors["pose_field"] = quantize(field, QuantSpec("raw"))
    data = write_archive(tensors, architecture=renderers.architecture(HNERV, 4))
    assert not read_archive(data).by_position and read_archive(data).tensors["pose_field"].shape == field.shape
    with pytest.raises(ArchiveError, match="pose_field"):
        read_hnerv(data)

    net = mask_warp.MaskWarp(MASK, seed=0)
    maps = np.zeros((2, MASK["out_h"], MASK["out_w"]), np.uint8)
    tensors = mask_warp_export.archive_tensors(net, torch.zeros(2, MASK["pose_dim"]), maps)
    tensors["pose_field"] = quantize(field, QuantSpec("raw"))
    data = write_archive(tensors, architecture=mask_warp.architecture(MASK, 4))
    with pytest.raises(ArchiveError, match="pose_field"):
        mask_warp_io.read_model(data)


# --- archive round trips and rendering -------------------------------------------------

FRAMES = 5                              # 3 pairs, the last one half used
PAIRS = 3


def hnerv_case(field, bias):
    """(archive bytes, what its reader gives, its uint8 pairs at CAMERA) of a seeded hnerv_pair."""
    net = renderers.HnervPair(HNERV, seed=2)
    latents = renderers.init_latents(PAIRS, HNERV, seed=4) * 3
    data = hnerv_export.build_archive(net, latents, FRAMES, output_bias=bias, pose_field=field)
    back = read_hnerv(data)
    pairs = torch.cat(list(renderers.render_uint8(back.model, back.latents, "cpu", CAMERA,
                                                  output_bias=back.output_bias, pose_field=back.pose_field)))
    return data, back, pairs


def mask_case(field, bias):
    """(archive bytes, what its reader gives, its uint8 pairs at CAMERA) of a seeded mask_warp."""
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, MASK["classes"], (PAIRS, MASK["out_h"] // 4, MASK["out_w"] // 4))
    maps = np.repeat(np.repeat(blocks, 4, axis=1), 4, axis=2).astype(np.uint8)
    poses = torch.from_numpy(rng.normal(0, 1, (PAIRS, MASK["pose_dim"])).astype(np.float32))
    net = mask_warp.MaskWarp(MASK, seed=3)
    data = mask_warp_export.build_archive(net, poses, maps, FRAMES, output_bias=bias, pose_field=field)
    back = mask_warp_io.read_model(data)
    pairs = torch.cat(list(mask_warp.render_uint8(back.model, back.class_maps, back.poses, "cpu", CAMERA,
                                                  output_bias=back.output_bias, pose_field=back.pose_field)))
    return data, back, pairs


@pytest.fixture(params=["hnerv_pair", "mask_warp"])
def case(request, monkeypatch):
    # two render batches, the second one short: each batch must get its own pairs' codes
    monkeypatch.setattr(renderers, "RENDER_BATCH", 2)
    monkeypatch.setattr(mask_warp, "RENDER_BATCH", 2)
    return hnerv_case if request.param == "hnerv_pair" else mask_case


def test_codes_survive_the_archive_exactly(case):
    field = random_codes(PAIRS, zero_pairs=[1])
    field[0, 0, 0, 0], field[2, 2, 2, 3] = 127, -127
    bias = torch.tensor([[[3, -2, 0], [0, 0, 1]], [[0] * 3] * 2, [[-4, 0, 0], [0, 2, 0]]], dtype=torch.int8)
    data, back, _ = case(field, bias)
    assert back.pose_field.dtype == torch.int8 and torch.equal(back.pose_field, field)
    assert torch.equal(back.output_bias, bias) and read_archive(data).by_position
    _, alone, _ = case(field, None)                                 # the field without the bias
    assert alone.output_bias is None and torch.equal(alone.pose_field, field)


def test_an_all_zero_field_is_not_stored(case):
    zero = torch.zeros(pose_field.shape(PAIRS), dtype=torch.int8)
    data, back, pairs = case(zero, None)
    assert back.pose_field is None and "pose_field" not in read_archive(data).tensors
    plain, _, plain_pairs = case(None, None)
    assert data == plain and torch.equal(pairs, plain_pairs)


def test_the_field_changes_the_first_frames_and_leaves_the_second_and_seg_alone(case):
    bias = torch.tensor([[[3, -2, 0], [0, 0, 1]]] * PAIRS, dtype=torch.int8)
    field = random_codes(PAIRS, -25, 25, seed=1, zero_pairs=[1])
    _, with_field, a = case(field, bias)
    _, without, b = case(None, bias)
    assert without.pose_field is None and torch.equal(with_field.output_bias, without.output_bias)
    assert a.shape == b.shape == (PAIRS, 2, *CAMERA, 3)
    assert torch.equal(a[:, 1], b[:, 1])                            # every second frame, bit for bit
    assert torch.equal(a[1], b[1])                                  # the all-zero pair renders as without
    assert not torch.equal(a[0, 0], b[0, 0]) and not torch.equal(a[2, 0], b[2, 0])
    # where neither clamps, the first frames differ by the field taken to the camera (within rounding)
    expected = F.interpolate(upsampled_pose_field(field, RENDER), size=CAMERA, mode="bicubic",
                             align_corners=False).permute(0, 2, 3, 1)
    a0, b0 = a[:, 0].float(), b[:, 0].float()
    inside = (a0 > 0) & (a0 < 255) & (b0 > 0) & (b0 < 255)
    assert inside.float().mean() > 0.5
    assert float(((a0 - b0) - expected)[inside].abs().max()) < 1.0 + 1e-3
    scorers = tiny_scorers(0)
    out_a, out_b = scorers.outputs(a), scorers.outputs(b)
    assert np.array_equal(out_a["seg"], out_b["seg"])
    assert not np.allclose(out_a["pose"][[0, 2]], out_b["pose"][[0, 2]])


# --- the encoder's linear model --------------------------------------------------------

def test_the_response_map_is_the_linear_part_of_the_exact_chain():
    p = 3
    gen = torch.Generator().manual_seed(11)
    rendered = torch.full((p, 2, 3, *RENDER), 128.0)
    rendered[:, 1] += torch.randint(-30, 31, (p, 3, *RENDER), generator=gen).float()
    codes = random_codes(p, -20, 20, seed=5)
    response = response_map(RENDER, CAMERA)
    k = pose_field.CHANNELS * pose_field.GRID[0] * pose_field.GRID[1]
    assert response.shape == (k, 6, *(n // 2 for n in contract.MODEL_INPUT_HW))

    def exact(frames):
        return preprocess.posenet_input(preprocess.frames_float(camera_pairs_uint8(frames, CAMERA)))

    x0, x1 = exact(rendered), exact(add_pose_field(rendered, codes))
    predicted = (codes.flatten(1).float() @ response.flatten(1)).view(p, 6, *x0.shape[-2:])
    error = (x1[:, :6] - x0[:, :6] - predicted).abs()
    # an integer grey first frame: the camera rounds the field alone, at most half a grey level
    assert float(error.max()) <= 0.5 + 1e-3 and float(error.mean()) < 0.3
    assert torch.equal(x1[:, 6:], x0[:, 6:])                       # the second frame's planes, exactly
    # linear: the response of a sum is the sum of the responses
    a, b = random_codes(1, -9, 9, seed=6).flatten(1).float(), random_codes(1, -9, 9, seed=7).flatten(1).float()
    flat = response.flatten(1)
    assert torch.allclose((a + b) @ flat, a @ flat + b @ flat, atol=1e-3)
    # a textured first frame: the camera rounds both sides, still under one grey level
    textured = rendered.clone()
    textured[:, 0] += torch.randint(-30, 31, (p, 3, *RENDER), generator=gen).float()
    x0, x1 = exact(textured), exact(add_pose_field(textured, codes))
    error = (x1[:, :6] - x0[:, :6] - predicted).abs()
    assert float(error.max()) < 1.0 and float(error.mean()) < 0.3
    assert torch.equal(x1[:, 6:], x0[:, 6:])


# --- fitting --------------------------------------------------------------------------

def exact_pose(scorers, frames: torch.Tensor, batch: int = 3) -> np.ndarray:
    """PoseNet's outputs on the camera pairs of ``frames``, ``batch`` pairs at a time (as the fit
    batches them: the last bits depend on the batch)."""
    out = []
    with torch.inference_mode():
        for i in range(0, len(frames), batch):
            x = preprocess.posenet_input(preprocess.frames_float(camera_pairs_uint8(frames[i:i + batch], CAMERA)))
            out.append(scorers.posenet(x)["pose"].float().numpy())
    return np.concatenate(out)


def coarse_pairs(p: int, noise: float = 0.0) -> torch.Tensor:
    """Float pairs ``(p, 2, 3, h, w)``: random 3 x 4 colour grids upsampled, plus uniform noise."""
    gen = torch.Generator().manual_seed(2)
    coarse = 128.0 + 60.0 * (torch.rand(p, 2, 3, 3, 4, generator=gen) - 0.5)
    rendered = F.interpolate(coarse.flatten(0, 1), size=RENDER, mode="bilinear",
                             align_corners=False).view(p, 2, 3, *RENDER)
    return rendered + noise * (torch.rand(rendered.shape, generator=gen) - 0.5)


def test_fitting_lowers_the_exact_pose_error_and_keeps_only_what_helps():
    scorers = tiny_scorers(0)
    p = 4
    rendered = coarse_pairs(p, noise=8.0)
    truth = random_codes(p, -25, 25, seed=8, zero_pairs=[2])        # pair 2's target is its own render
    pose = exact_pose(scorers, add_pose_field(rendered, truth))
    targets = Targets(seg=np.zeros((p, *contract.MODEL_INPUT_HW), np.uint8), pose=pose.astype(np.float32))
    calls = []

    def render(batch: slice) -> torch.Tensor:
        calls.append(batch)
        return rendered[batch]

    fit = fit_pose_field(render, targets, scorers, FieldSettings(iterations=12, lr=3.0, batch_pairs=3),
                         camera=CAMERA, show_progress=False)
    assert [(s.start, s.stop) for s in calls] == [(0, 3), (3, 4)]
    assert fit.codes.dtype == torch.int8 and fit.codes.shape == pose_field.shape(p)
    assert int(fit.codes.min()) >= -127 and int(fit.codes.max()) <= 127
    assert fit.before.shape == fit.after.shape == (p,)
    assert np.all(fit.after <= fit.before) and fit.after.mean() < fit.before.mean()
    fell = fit.after < fit.before
    assert not fit.codes[torch.from_numpy(~fell)].any()             # no gain, no codes
    assert fit.codes[torch.from_numpy(fell)].flatten(1).any(1).all()
    assert fit.changed_pairs == int(fell.sum()) >= 2
    assert fit.before[2] == 0 and not fit.codes[2].any()            # nothing to gain where nothing is off
    # what the fit reports is what the kept codes measure through the exact chain
    kept = exact_pose(scorers, add_pose_field(rendered, fit.codes))[:, :contract.POSE_SCORED]
    measured = ((kept - pose[:, :contract.POSE_SCORED]) ** 2).mean(1)
    assert np.allclose(measured, fit.after, rtol=1e-5, atol=1e-12)


def test_a_second_pass_refits_around_the_kept_codes_and_never_loses():
    scorers = tiny_scorers(0)
    p = 4
    rendered = coarse_pairs(p, noise=8.0)
    pose = exact_pose(scorers, add_pose_field(rendered, random_codes(p, -40, 40, seed=5)))
    targets = Targets(seg=np.zeros((p, *contract.MODEL_INPUT_HW), np.uint8), pose=pose.astype(np.float32))

    def fit(passes: int, **kw):
        return fit_pose_field(lambda batch: rendered[batch], targets, scorers,
                              FieldSettings(iterations=6, lr=3.0, batch_pairs=3, passes=passes, **kw),
                              camera=CAMERA, show_progress=False)

    one, two = fit(1), fit(2, refit_iterations=6, refit_lr=1.0)
    assert np.array_equal(one.before, two.before)
    assert np.all(two.after <= one.after)       # the first pass is the one-pass fit; later ones only keep gains
    assert two.after.mean() < one.after.mean()  # 6 steps leave room that a relinearised pass takes
    assert int(two.codes.min()) >= -127 and int(two.codes.max()) <= 127
    kept = exact_pose(scorers, add_pose_field(rendered, two.codes))[:, :contract.POSE_SCORED]
    measured = ((kept - pose[:, :contract.POSE_SCORED]) ** 2).mean(1)
    assert np.allclose(measured, two.after, rtol=1e-5, atol=1e-12)
    idle = fit(2, refit_iterations=0)                        # a pass without steps only re-tries rounding
    assert np.all(idle.after <= one.after)


def test_each_candidate_is_tried_from_where_the_pass_started(monkeypatch):
    from tac_torch import pose_field as module

    scorers = tiny_scorers(0)
    p = 4
    rendered = coarse_pairs(p, noise=8.0)
    truth = random_codes(p, -40, 40, seed=5)
    pose = exact_pose(scorers, add_pose_field(rendered, truth))
    targets = Targets(seg=np.zeros((p, *contract.MODEL_INPUT_HW), np.uint8), pose=pose.astype(np.float32))
    tried = [(truth.int() + random_codes(p, -3, 3, seed=s).int()).flatten(1).float() for s in (21, 22)]
    monkeypatch.setattr(module, "_candidates", lambda *args: [c.clone() for c in tried])
    fit = fit_pose_field(lambda batch: rendered[batch], targets, scorers, FieldSettings(iterations=1, batch_pairs=4),
                         camera=CAMERA, show_progress=False)
    errors = [((exact_pose(scorers, add_pose_field(rendered, c.to(torch.int8).view(pose_field.shape(p))))
                - pose) ** 2)[:, :contract.POSE_SCORED].mean(1) for c in [torch.zeros_like(tried[0]), *tried]]
    best = np.argmin(np.stack(errors), 0)
    expected = torch.stack([torch.zeros_like(tried[0]), *tried])[torch.from_numpy(best), torch.arange(p)]
    assert (best > 0).all() and len(set(best.tolist())) == 2          # both candidates win somewhere
    assert torch.equal(fit.codes.flatten(1).float(), expected)    # never the sum of two candidates


def test_every_pass_fits_at_its_rate_with_the_settings_beta2(monkeypatch):
    scorers = tiny_scorers(1)
    rendered = grey_pairs(2, seed=4)
    pose = exact_pose(scorers, add_pose_field(rendered, random_codes(2, -20, 20, seed=9)))
    targets = Targets(seg=np.zeros((2, *contract.MODEL_INPUT_HW), np.uint8), pose=pose)
    made, adam = [], torch.optim.Adam

    def spy(params, lr, betas):
        made.append((lr, betas))
        return adam(params, lr=lr, betas=betas)

    monkeypatch.setattr(torch.optim, "Adam", spy)
    settings = FieldSettings(iterations=2, lr=3.0, batch_pairs=4, passes=2, refit_iterations=2, refit_lr=0.5,
                             beta2=0.95)
    fit_pose_field(lambda batch: rendered[batch], targets, scorers, settings, camera=CAMERA, show_progress=False)
    assert made == [(3.0, (0.9, 0.95)), (0.5, (0.9, 0.95))]


class _Stuck:
    """Four pairs whose targets lie 40 codes out, fitted plainly with ``base``; ``stuck``: the pairs
    above the median MSE after it (``above``)."""

    def __init__(self, base: dict, p: int = 4):
        self.scorers, self.base = tiny_scorers(0), base
        self.rendered = coarse_pairs(p, noise=8.0)
        self.pose = exact_pose(self.scorers, add_pose_field(self.rendered, random_codes(p, -40, 40, seed=5)))
        self.targets = Targets(seg=np.zeros((p, *contract.MODEL_INPUT_HW), np.uint8),
                               pose=self.pose.astype(np.float32))
        self.plain = self.fit()
        self.above = float(np.median(self.plain.after))
        self.stuck = self.plain.after > self.above
        assert 0 < self.stuck.sum() < p

    def fit(self, **more):
        return fit_pose_field(lambda batch: self.rendered[batch], self.targets, self.scorers,
                              FieldSettings(**self.base, **more), camera=CAMERA, show_progress=False)

    def check(self, fit) -> None:
        """Pairs below ``above`` keep their plain fit, none gets worse, and ``fit.after`` is what
        the kept codes score."""
        assert np.array_equal(fit.before, self.plain.before)
        assert np.array_equal(fit.after[~self.stuck], self.plain.after[~self.stuck])
        assert np.all(fit.after <= self.plain.after)
        kept = exact_pose(self.scorers, add_pose_field(self.rendered, fit.codes))[:, :contract.POSE_SCORED]
        measured = ((kept - self.pose[:, :contract.POSE_SCORED]) ** 2).mean(1)
        assert np.allclose(measured, fit.after, rtol=1e-5, atol=1e-12)


def _adams_made(monkeypatch) -> list[tuple[float, int]]:
    """(rate, pairs) of every Adam built from now on."""
    made, adam = [], torch.optim.Adam

    def spy(params, lr, betas):
        made.append((lr, len(params[0])))
        return adam(params, lr=lr, betas=betas)

    monkeypatch.setattr(torch.optim, "Adam", spy)
    return made


def test_pairs_left_above_retry_above_are_fitted_again_at_retry_lr_and_keep_the_better_fit(monkeypatch):
    case = _Stuck(dict(iterations=6, lr=3.0, batch_pairs=3, passes=2, refit_iterations=3, refit_lr=1.0))
    made = _adams_made(monkeypatch)
    fit = case.fit(retry_above=case.above, retry_lr=0.7)
    retried = [(lr, n) for lr, n in made if lr == 0.7]          # first passes of the retries, on stuck pairs only
    stuck = case.stuck
    assert [n for _, n in retried] == [c for c in (int(stuck[:3].sum()), int(stuck[3:].sum())) if c]
    case.check(fit)


def test_pairs_still_above_retry_above_get_extra_refit_passes_around_their_codes(monkeypatch):
    case = _Stuck(dict(iterations=6, lr=3.0, batch_pairs=4, passes=1, refit_iterations=4, refit_lr=0.9))
    made = _adams_made(monkeypatch)
    # the retry at the first pass's own rate fits the same codes again: only the extra passes can gain
    fit = case.fit(retry_above=case.above, retry_lr=3.0, extra_passes=2)
    n = int(case.stuck.sum())
    assert made[:2] == [(3.0, 4), (3.0, n)]
    assert made[2:] == [(0.9, n)] * 2                           # refit passes, on the stuck pairs only
    case.check(fit)
    assert np.any(fit.after[case.stuck] < case.plain.after[case.stuck])
    with pytest.raises(InputError, match="extra_passes must be an integer >= 0"):
        FieldSettings(extra_passes=-1)


def test_zero_iterations_keep_no_codes():
    scorers = tiny_scorers(1)
    rendered = grey_pairs(2, seed=4)
    pose = exact_pose(scorers, add_pose_field(rendered, random_codes(2, -20, 20, seed=9)))
    targets = Targets(seg=np.zeros((2, *contract.MODEL_INPUT_HW), np.uint8), pose=pose)
    fit = fit_pose_field(lambda batch: rendered[batch], targets, scorers, FieldSettings(iterations=0),
                         camera=CAMERA, show_progress=False)
    assert not fit.codes.any() and fit.changed_pairs == 0
    assert np.array_equal(fit.before, fit.after) and np.all(fit.before > 0)


def test_field_settings_are_checked():
    for bad in ({"iterations": -1}, {"iterations": 1.5}, {"lr": 0.0}, {"batch_pairs": 0}, {"passes": 0},
                {"passes": 1.0}, {"refit_iterations": -1}, {"refit_lr": 0.0}, {"refit_lr": float("inf")},
                {"beta2": 1.0}, {"beta2": -0.1}, {"beta2": True}, {"retry_above": -1e-3},
                {"retry_above": float("inf")}, {"retry_lr": 0.0}, {"retry_lr": "1"}):
        with pytest.raises(InputError):
            FieldSettings(**bad)


def test_round_codes_cancel_rounding_errors_through_the_jacobian():
    gen = torch.Generator().manual_seed(11)
    pairs, k = 5, 36
    a = torch.randn(pairs, 6, k, generator=gen)

    def pose_of(f: torch.Tensor) -> torch.Tensor:          # a linear "PoseNet": pose = A f
        return torch.einsum("bok,bk->bo", a, f)

    field = 20.0 * torch.randn(pairs, k, generator=gen)
    field[0, 0] = 126.8                                    # its ceiling would leave the code range
    target = pose_of(field)                                # the fitted field is exact: error 0
    codes = round_codes(field, pose_of, target)
    assert torch.equal(codes, codes.round())
    assert ((codes - field).abs() < 1).all()
    assert int(codes.min()) >= pose_field.CODE_RANGE[0] and int(codes.max()) <= pose_field.CODE_RANGE[1]
    nearest = ((pose_of(field.round()) - target) ** 2).sum(1)
    searched = ((pose_of(codes) - target) ** 2).sum(1)
    assert (searched <= nearest).all()
    assert float(searched.sum()) < 0.25 * float(nearest.sum())  # 6 outputs, 36 codes: the errors cancel


def test_a_converged_pair_stops_where_it_is():
    scorers = tiny_scorers(0)
    p = 3
    rendered = coarse_pairs(p)
    pose = exact_pose(scorers, add_pose_field(rendered, random_codes(p, -25, 25, seed=8)))
    targets = Targets(seg=np.zeros((p, *contract.MODEL_INPUT_HW), np.uint8), pose=pose.astype(np.float32))

    def fit(converged: float):
        return fit_pose_field(lambda batch: rendered[batch], targets, scorers,
                              FieldSettings(iterations=12, lr=3.0, batch_pairs=3, converged=converged),
                              camera=CAMERA, show_progress=False)

    assert not fit(1e9).codes.any()                  # every pair "close enough" at once: nothing moves
    moving = fit(1e-12)
    assert moving.codes.any() and moving.after.mean() < moving.before.mean()
    with pytest.raises(InputError):
        FieldSettings(converged=-1.0)
