"""Scorer preprocessing: the exact contest path, its differentiable twin, and their layouts."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tac_core.errors import InputError  # noqa: E402
from tac_torch import preprocess as P  # noqa: E402


@pytest.fixture(scope="module")
def pairs():
    """Two pairs of small random frames, odd sized, as uint8 (B, 2, H, W, 3)."""
    return torch.from_numpy(np.random.default_rng(1).integers(0, 256, (2, 2, 37, 53, 3), dtype=np.uint8))


def _yuv6_reference(rgb: np.ndarray) -> np.ndarray:
    """yuv6 in float64 numpy, written from the contract's formulas."""
    h, w = rgb.shape[-2] // 2 * 2, rgb.shape[-1] // 2 * 2
    r, g, b = (rgb[..., c, :h, :w].astype(np.float64) for c in range(3))
    y = np.clip(0.299 * r + 0.587 * g + 0.114 * b, 0, 255)
    u = np.clip((b - y) / 1.772 + 128, 0, 255)
    v = np.clip((r - y) / 1.402 + 128, 0, 255)

    def sub(p):
        return (p[..., 0::2, 0::2] + p[..., 1::2, 0::2] + p[..., 0::2, 1::2] + p[..., 1::2, 1::2]) / 4

    planes = [y[..., 0::2, 0::2], y[..., 1::2, 0::2], y[..., 0::2, 1::2], y[..., 1::2, 1::2],
              sub(u), sub(v)]
    return np.stack(planes, axis=-3)


def test_frames_keep_the_official_channels_last_layout(pairs):
    frames = P.frames_float(pairs)
    b, t, h, w, c = pairs.shape
    assert frames.shape == (b, t, c, h, w) and frames.dtype == torch.float32
    assert frames.stride() == (t * h * w * c, h * w * c, 1, w * c, c)
    seg = P.segnet_input(frames)
    assert seg.shape == (b, 3, 384, 512)
    assert seg.is_contiguous(memory_format=torch.channels_last)


def test_yuv6_matches_the_formulas_and_plane_order():
    rgb = torch.from_numpy(np.random.default_rng(2).uniform(-20, 280, (2, 3, 6, 9)).astype(np.float32))
    ours = P.yuv6(rgb.clone())
    assert ours.shape == (2, 6, 3, 4)                      # odd width cropped to even
    np.testing.assert_allclose(ours.numpy(), _yuv6_reference(rgb.numpy()), rtol=0, atol=1e-3)
    assert ours.min() >= 0 and ours.max() <= 255


def test_yuv6_plane_order_rows_first():
    grey = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4).expand(1, 3, 4, 4)
    planes = P.yuv6(grey.clone())[0]
    assert planes[0].tolist() == [[0, 2], [8, 10]]        # even rows, even columns
    assert planes[1].tolist() == [[4, 6], [12, 14]]       # odd rows, even columns
    assert planes[2].tolist() == [[1, 3], [9, 11]]        # even rows, odd columns
    assert torch.allclose(planes[4], torch.full((2, 2), 128.0), atol=1e-4)


def test_posenet_input_shape_and_frame_order(pairs):
    x = P.posenet_input(P.frames_float(pairs))
    assert x.shape == (2, 12, 192, 256)
    second_only = P.posenet_input(P.frames_float(pairs[:, 1:].expand(-1, 2, -1, -1, -1).contiguous()))
    assert torch.equal(x[:, 6:], second_only[:, 6:])
    assert not torch.equal(x[:, :6], x[:, 6:])


def test_segnet_sees_only_the_last_frame(pairs):
    changed = pairs.clone()
    changed[:, 0] = 255 - changed[:, 0]
    assert torch.equal(P.segnet_input(P.frames_float(pairs)), P.segnet_input(P.frames_float(changed)))


def test_differentiable_twin_equals_the_exact_path(pairs):
    frames = P.frames_float(pairs)
    exact = P.posenet_input(frames)
    assert torch.equal(P.posenet_input_differentiable(frames), exact)
    contiguous = P.posenet_input_differentiable(frames.contiguous())
    torch.testing.assert_close(contiguous, exact, rtol=1e-4, atol=1e-4)
    assert torch.equal(P.segnet_input_differentiable(frames), P.segnet_input(frames))


def test_differentiable_twin_clamps_like_the_exact_one():
    rgb = torch.from_numpy(np.random.default_rng(3).uniform(-50, 300, (1, 3, 8, 8)).astype(np.float32))
    assert torch.equal(P.yuv6_differentiable(rgb), P.yuv6(rgb.clone()))


def test_yuv6_gradients_match_finite_differences():
    rgb = torch.from_numpy(np.random.default_rng(4).uniform(60, 190, (1, 3, 4, 4)))
    rgb.requires_grad_(True)
    assert torch.autograd.gradcheck(P.yuv6_differentiable, (rgb,), eps=1e-6, atol=1e-6)


def test_posenet_input_passes_finite_nonzero_gradients(pairs):
    frames = P.frames_float(pairs).clone().requires_grad_(True)
    x = P.posenet_input_differentiable(frames)
    (x * torch.linspace(0, 1, x.numel()).reshape(x.shape)).sum().backward()
    grad = frames.grad
    assert grad is not None and torch.isfinite(grad).all()
    assert (grad[:, 0].abs().sum() > 0) and (grad[:, 1].abs().sum() > 0)


def test_exact_yuv6_keeps_no_graph():
    rgb = torch.full((1, 3, 2, 2), 100.0, requires_grad=True)
    assert not P.yuv6(rgb).requires_grad


@pytest.mark.parametrize("bad", [np.zeros((1, 2, 8, 8, 3), np.int16), np.zeros((1, 2, 8, 8, 4), np.uint8),
                                 np.zeros((0, 2, 8, 8, 3), np.uint8), [[1, 2, 3]]])
def test_malformed_pairs_are_input_errors(bad):
    with pytest.raises(InputError):
        P.as_pairs_tensor(bad)


def test_differentiable_input_checks_its_shape():
    with pytest.raises(InputError):
        P.posenet_input_differentiable(torch.zeros(1, 3, 2, 8, 8))
