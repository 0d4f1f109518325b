"""Video I/O: the contract's decode, bit-exact against an independent torch implementation."""

import numpy as np
import pytest

from tac_core import contract, video
from tac_core.errors import RawFramesError, VideoError

import torch  # noqa: E402  (the independent reference)
F = torch.nn.functional


def torch_reference_rgb(y, u, v):
    """The contract's conversion written with torch, independently of tac_core.video."""
    h, w = y.shape
    yt = torch.from_numpy(y.copy()).float()
    ups = [F.interpolate(torch.from_numpy(p.copy()).float()[None, None], size=(h, w), mode="bilinear",
                         align_corners=False)[0, 0] for p in (u, v)]
    yf = (yt - 16.0) * (255.0 / 219.0)
    uf = (ups[0] - 128.0) * (255.0 / 224.0)
    vf = (ups[1] - 128.0) * (255.0 / 224.0)
    r = (yf + 1.402 * vf).clamp(0, 255)
    g = (yf - 0.344136 * uf - 0.714136 * vf).clamp(0, 255)
    b = (yf + 1.772 * uf).clamp(0, 255)
    return torch.stack([r, g, b], dim=-1).round().to(torch.uint8).numpy()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_yuv420_to_rgb_bit_exact_on_random_planes(seed):
    rng = np.random.default_rng(seed)
    h, w = contract.CAMERA_HW
    y = rng.integers(0, 256, (h, w), dtype=np.uint8)
    u = rng.integers(0, 256, (h // 2, w // 2), dtype=np.uint8)
    v = rng.integers(0, 256, (h // 2, w // 2), dtype=np.uint8)
    assert np.array_equal(video.yuv420_to_rgb(y, u, v), torch_reference_rgb(y, u, v))


def test_yuv420_to_rgb_exercises_clamping_and_ties():
    # Extremes clamp; mid values land on .5 ties that must round half to even.
    h, w = 8, 8
    y = np.array([[0, 16, 235, 255] * 2] * h, dtype=np.uint8)
    u = np.full((h // 2, w // 2), 128, np.uint8)
    v = np.array([[0, 255, 128, 17]] * (h // 2), dtype=np.uint8)
    assert np.array_equal(video.yuv420_to_rgb(y, u, v), torch_reference_rgb(y, u, v))


def test_decoded_frames_equal_torch_conversion_of_the_same_planes(small_clip):
    frames = list(video.decode_frames(small_clip, raw=True))
    assert len(frames) == 6
    f = frames[2]
    planes = [np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[:hh, :ww]
              for p, (hh, ww) in zip(f.planes, [(874, 1164), (437, 582), (437, 582)])]
    assert np.array_equal(video.frame_to_rgb(f), torch_reference_rgb(*planes))


def test_probe_counts_frames(small_clip):
    info = video.probe(small_clip)
    assert (info["width"], info["height"], info["frames"]) == (1164, 874, 6)


def test_pair_batches_drop_the_last_unpaired_frame():
    frames = [np.full((2, 3, 3), i, np.uint8) for i in range(7)]
    batches = list(video.pair_batches(frames, batch_size=2))
    assert [b.shape[0] for b in batches] == [2, 1]
    assert batches[1][0, 1, 0, 0, 0] == 5


def test_prefetch_keeps_order_and_reraises():
    assert list(video.prefetch(iter(range(50)), depth=3)) == list(range(50))

    def broken():
        yield 1
        raise VideoError("boom")

    with pytest.raises(VideoError, match="boom"):
        list(video.prefetch(broken()))


def test_raw_files_round_trip_and_refuse_partial_frames(tmp_path):
    hw = (4, 6)
    frames = np.arange(3 * 4 * 6 * 3, dtype=np.uint8).reshape(3, 4, 6, 3)
    path = tmp_path / "x.raw"
    assert video.write_raw(path, frames, hw) == 3
    assert np.array_equal(video.open_raw(path, hw), frames)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(RawFramesError, match="not a whole number"):
        video.raw_frame_count(path, hw)
    with pytest.raises(RawFramesError, match="not found"):
        video.raw_frame_count(tmp_path / "missing.raw", hw)


def test_write_raw_leaves_nothing_on_failure(tmp_path):
    path = tmp_path / "x.raw"

    def frames():
        yield np.zeros((4, 6, 3), np.uint8)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        video.write_raw(path, frames(), (4, 6))
    assert list(tmp_path.iterdir()) == []


def test_bad_videos_are_refused(tmp_path):
    with pytest.raises(VideoError, match="not found"):
        list(video.decode_frames(tmp_path / "none.mkv"))
    junk = tmp_path / "junk.mkv"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(VideoError, match="junk.mkv"):
        list(video.decode_frames(junk))


def test_wrong_resolution_is_refused(tmp_path):
    path = tmp_path / "small.mkv"
    video.encode_frames(path, [np.zeros((64, 96, 3), np.uint8)] * 2, codec="libx265",
                        options={"preset": "ultrafast", "x265-params": "log-level=error"})
    with pytest.raises(VideoError, match="96x64"):
        list(video.decode_frames(path))
