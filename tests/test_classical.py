"""Classical codecs make submission folders that inflate through their own inflate.sh,
in a Python that has the contest's packages but not tac."""

import numpy as np
import pytest

from tac_core import classical, contract, harness, video
from tac_core.errors import InputError


def test_x265_baseline_submission_inflates_in_a_bare_environment(tmp_path, small_clip, python_without_tac):
    out = classical.X265_BASELINE.compress(small_clip, tmp_path / "sub")
    assert sorted(p.name for p in out.iterdir()) == ["archive.zip", "inflate.py", "inflate.sh", "runtime",
                                                      "tac_core", "tac_torch"]
    raws = harness.run_inflate(out, [small_clip.name], python=python_without_tac, cwd=tmp_path)
    raw = raws[small_clip.name]
    assert raw.stat().st_size == 6 * contract.FRAME_BYTES
    originals = np.stack(list(video.decode_frames(small_clip)))
    inflated = video.open_raw(raw)
    err = np.abs(inflated.astype(np.int16) - originals).mean()
    assert 0 < err < 12  # lossy, but the same picture


def test_baseline_settings_are_the_contests():
    c = classical.X265_BASELINE
    assert c.scaled_size(1164, 874) == (522, 392)
    opts = c.options()
    assert opts["crf"] == "30" and opts["preset"] == "ultrafast"
    assert "keyint=1" in opts["x265-params"] and "scenecut=0" in opts["x265-params"]


def test_av1_codec_round_trips(tmp_path, small_clip):
    out = classical.AV1.with_settings(crf=50, scale=0.3).compress(small_clip, tmp_path / "av1")
    raws = harness.run_inflate(out, [small_clip.name])
    assert video.raw_frame_count(raws[small_clip.name]) == 6


def test_bad_settings_are_refused():
    with pytest.raises(InputError, match="scale"):
        classical.X265_BASELINE.with_settings(scale=3.0)
    with pytest.raises(InputError, match="CRF"):
        classical.X265_BASELINE.with_settings(crf=99)


def test_inflate_failure_is_reported_without_a_complete_looking_file(tmp_path, small_clip):
    out = classical.X265_BASELINE.compress(small_clip, tmp_path / "sub")
    with pytest.raises(harness.InflateError, match="no archive member"):
        harness.run_inflate(out, ["other.mkv"])
    assert not list((out / "inflated").glob("*.raw"))


def test_upsampling_in_batches_matches_one_pass_over_all_frames():
    import torch
    import torch.nn.functional as F

    from tac_runtime.classical import BATCH_FRAMES, upsample_frames

    frames = np.random.default_rng(3).integers(0, 256, (2 * BATCH_FRAMES + 3, 10, 12, 3), dtype=np.uint8)
    x = F.interpolate(torch.from_numpy(frames).permute(0, 3, 1, 2).float(), size=(21, 25), mode="bicubic",
                      align_corners=False)
    whole = x.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    got = upsample_frames(frames, (21, 25))
    assert got.dtype == np.uint8 and got.shape == whole.shape
    assert np.array_equal(got, whole)
