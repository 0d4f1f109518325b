"""The evaluator end to end on a short synthetic clip, with stand-in scorers."""

import json

import numpy as np
import pytest

from tac_core import video
from tac_core.cli.main import main
from tac_core.errors import InputError


@pytest.fixture(scope="module")
def scorers():
    from tac_torch.scorers import load_scorers

    return load_scorers("stand-in", seed=0)


@pytest.fixture(scope="module")
def originals(small_clip):
    return list(video.decode_frames(small_clip))


def make_submission(root, frames, name="clip", archive_bytes=5000):
    sub = root / "sub"
    (sub / "inflated").mkdir(parents=True, exist_ok=True)
    (sub / "archive.zip").write_bytes(b"\0" * archive_bytes)
    video.write_raw(sub / "inflated" / f"{name}.raw", frames)
    return sub


def degrade(frames, sigma=8.0, seed=0):
    rng = np.random.default_rng(seed)
    return [np.clip(f + rng.normal(0, sigma, f.shape), 0, 255).astype(np.uint8) for f in frames]


def test_identical_frames_score_zero_distortion(tmp_path, small_clip, originals, scorers):
    from tac_torch.evaluate import evaluate

    sub = make_submission(tmp_path, originals)
    result = evaluate(sub, small_clip.parent, scorers, cache_dir=tmp_path / "cache")
    c = result.components
    assert (c.samples, c.seg, c.pose) == (3, 0.0, 0.0)
    assert c.original_bytes == small_clip.stat().st_size
    assert c.score == pytest.approx(25 * 5000 / small_clip.stat().st_size)
    record = json.loads((sub / "score.json").read_text())
    assert record["axis"] == "stand-in" and record["samples"] == 3
    assert record["video_sha256"]["clip.mkv"] and record["inflated_sha256"]["clip.mkv"]
    assert "Average SegNet Distortion: 0.00000000" in (sub / "report.txt").read_text()


def test_degraded_frames_score_higher_and_match_the_plain_reference(tmp_path, small_clip, originals, scorers):
    from tac_torch.evaluate import evaluate
    from tac_torch.reference import evaluate_plain

    sub = make_submission(tmp_path, degrade(originals))
    first = evaluate(sub, small_clip.parent, scorers, cache_dir=tmp_path / "cache").components
    assert first.seg > 0 and first.pose > 0
    pose, seg, samples = evaluate_plain(small_clip, sub / "inflated" / "clip.raw", scorers)
    assert samples == first.samples
    assert first.pose == pytest.approx(pose, rel=1e-6) and first.seg == pytest.approx(seg, rel=1e-6)
    # The second run reads the originals' outputs from the cache and agrees to the bit.
    assert list((tmp_path / "cache").glob("*.npz"))
    second = evaluate(sub, small_clip.parent, scorers, cache_dir=tmp_path / "cache").components
    assert (second.pose, second.seg) == (first.pose, first.seg)


def test_frame_count_mismatch_is_refused_and_leaves_no_report(tmp_path, small_clip, originals, scorers):
    from tac_torch.evaluate import evaluate

    sub = make_submission(tmp_path, originals[:4])
    (sub / "report.txt").write_text("stale")
    with pytest.raises(InputError, match="4 inflated frames, but .* has 6"):
        evaluate(sub, small_clip.parent, scorers)
    assert not (sub / "report.txt").exists() and not (sub / "score.json").exists()


def test_bad_inputs_are_one_line_and_exit_2(tmp_path, small_clip, originals, capsys):
    sub = make_submission(tmp_path, originals)
    base = ["evaluate", "--stand-in", "--submission-dir", str(sub), "--video-dir", str(small_clip.parent)]

    raw = sub / "inflated" / "clip.raw"
    raw.write_bytes(raw.read_bytes()[:-7])
    assert main(base) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "clip.raw" in err[0] and "whole number" in err[0]

    names = tmp_path / "names.txt"
    names.write_text("missing.mkv\n")
    assert main(base + ["--video-names-file", str(names)]) == 2
    assert "missing.mkv" in capsys.readouterr().err

    (sub / "archive.zip").unlink()
    assert main(base) == 2
    assert "archive.zip" in capsys.readouterr().err

    assert main(["evaluate", "--stand-in", "--submission-dir", str(tmp_path / "nope"),
                 "--video-dir", str(small_clip.parent)]) == 2
    assert "submission folder not found" in capsys.readouterr().err
    assert not (sub / "report.txt").exists()


def test_gather_refuses_wrong_resolution(tmp_path):
    from tac_core import submission

    vids = tmp_path / "v"
    vids.mkdir()
    video.encode_frames(vids / "a.mkv", [np.zeros((64, 96, 3), np.uint8)] * 2, codec="libx265",
                        options={"preset": "ultrafast", "x265-params": "log-level=error"})
    sub = tmp_path / "s"
    (sub / "inflated").mkdir(parents=True)
    (sub / "archive.zip").write_bytes(b"z")
    with pytest.raises(InputError, match="96x64, expected 1164x874"):
        submission.gather(sub, vids)


def test_rate_bases(tmp_path, small_clip, originals):
    from tac_core import contract, submission

    sub = make_submission(tmp_path, originals)
    extra = small_clip.parent / "notes.npz"
    assert submission.gather(sub, small_clip.parent, rate_basis="contest-per-frame").original_bytes == \
        round(contract.CONTEST_VIDEO_BYTES * 6 / 1200)
    extra.write_bytes(b"1234")
    try:
        assert submission.gather(sub, small_clip.parent).original_bytes == small_clip.stat().st_size + 4
        assert submission.gather(sub, small_clip.parent, rate_basis="videos").original_bytes == \
            small_clip.stat().st_size
    finally:
        extra.unlink()
